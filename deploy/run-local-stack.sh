#!/usr/bin/env bash
# The production stack of docker-compose.yml without containers, from Debian's packages: a Mosquitto
# with the project's broker config, a private PostgreSQL cluster, and gateways sharing one MQTT
# subscription ($share/<group>/citywatch/#) and one database. Each part waits for the one before it to
# be healthy. Nothing of the machine's own Mosquitto or PostgreSQL (port 5432) is touched.
#
#   deploy/run-local-stack.sh start     start everything (again: only what is not running)
#   deploy/run-local-stack.sh stop      stop the gateways (they store and ack what they hold), then
#                                       the broker and PostgreSQL; the data stays in STACK_DIR
#   deploy/run-local-stack.sh status    what runs
#
# Settings (environment):
#   STACK_DIR            where everything lives (default ./var/stack)
#   STACK_MQTT_PORT      Mosquitto's port (default 1884)
#   STACK_PG_PORT        PostgreSQL's port (default 5433)
#   STACK_GATEWAY_PORTS  one API port per gateway (default "8080 8081": two gateways)
#   STACK_SHARE_GROUP    the shared-subscription group (default gateways)
#   STACK_BIND_HOST      the address all of them listen on (default 127.0.0.1)
#   PG_BIN               PostgreSQL's programs (default /usr/lib/postgresql/15/bin)
#   CITYWATCH            the citywatch command (default: .venv/bin/citywatch of this checkout, else PATH)
#   CITYWATCH_*          passed on to the gateways (e.g. CITYWATCH_DISPATCH_URL / _SECRET)
#
# STACK_DIR/stack.env (mode 600) names the URLs; STACK_DIR/probe-token holds a viewer API token for
# /health and /metrics (give the same file to Prometheus: authorization: credentials_file).
# Debian packages: mosquitto mosquitto-clients postgresql-15 curl. Run as root (PostgreSQL runs as
# user postgres through runuser) or as an ordinary user (PostgreSQL runs as that user).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/var/stack}"
MQTT_PORT="${STACK_MQTT_PORT:-1884}"
PG_PORT="${STACK_PG_PORT:-5433}"
read -r -a GATEWAY_PORTS <<< "${STACK_GATEWAY_PORTS:-8080 8081}"
SHARE_GROUP="${STACK_SHARE_GROUP:-gateways}"
HOST="${STACK_BIND_HOST:-127.0.0.1}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ -z "${CITYWATCH:-}" ]; then
  if [ -x "$ROOT/.venv/bin/citywatch" ]; then CITYWATCH="$ROOT/.venv/bin/citywatch"; else CITYWATCH=citywatch; fi
fi
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
WAIT_S="${STACK_WAIT_S:-60}"

say() { echo "stack: $*"; }
fail() { echo "stack: error: $*" >&2; exit 1; }

as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

alive() {  # alive PIDFILE WORD: the process of the pid file runs and is ours (not a reused pid)
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] || return 1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2"
}

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_for() {  # wait_for WHAT COMMAND...: until the command succeeds, at most WAIT_S seconds
  local what="$1" deadline=$((SECONDS + WAIT_S))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  say "$what is healthy"
}

db_url() { echo "postgresql+psycopg://citywatch:$(cat "$PG_PASSWORD_FILE")@$HOST:$PG_PORT/citywatch"; }

start_mosquitto() {
  local dir="$STACK_DIR/mosquitto"
  if alive "$dir/mosquitto.pid" mosquitto; then say "mosquitto runs already"; return; fi
  port_free "$MQTT_PORT" || fail "port $MQTT_PORT is taken (STACK_MQTT_PORT)"
  mkdir -p "$dir/conf.d"
  # The same layout as the container (deploy/mosquitto/mosquitto.conf): a listener and paths here, the
  # tuned settings in conf.d/citywatch.conf, a copy of citywatch/broker/mosquitto.conf.
  cp "$ROOT/citywatch/broker/mosquitto.conf" "$dir/conf.d/citywatch.conf"
  cat > "$dir/mosquitto.conf" <<EOF
listener $MQTT_PORT $HOST
persistence_location $dir/
log_dest file $dir/mosquitto.log
pid_file $dir/mosquitto.pid
# Started as root it would drop to user mosquitto, which cannot write here (and would run without
# its persistence file).
user $(id -un)
include_dir $dir/conf.d
EOF
  "$MOSQUITTO" -c "$dir/mosquitto.conf" -d 2>> "$dir/startup.log"
  wait_for "mosquitto on $HOST:$MQTT_PORT" \
    mosquitto_sub -h "$HOST" -p "$MQTT_PORT" -t citywatch/healthcheck -E -W 3 \
    || fail "mosquitto did not start: $(tail -5 "$dir/startup.log" "$dir/mosquitto.log" 2>/dev/null)"
}

start_postgres() {
  [ -x "$PG_BIN/initdb" ] || fail "no PostgreSQL in $PG_BIN (Debian: apt-get install postgresql-15; or set PG_BIN)"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$STACK_DIR/postgres"
    umask 077
    head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$PG_PASSWORD_FILE"
    umask 022
    install -d -m 0700 "$PG_DATA" "$PG_RUN"
    local pwfile="$STACK_DIR/postgres/initdb-pw"
    install -m 0600 "$PG_PASSWORD_FILE" "$pwfile"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$STACK_DIR/postgres" "$PG_DATA" "$PG_RUN" "$pwfile"
      as_pg test -x "$STACK_DIR/postgres" \
        || fail "user postgres cannot reach $STACK_DIR (a parent directory is private); choose another STACK_DIR"
    fi
    # Password (SCRAM) on TCP; the socket, in a private directory, only for the cluster's owner.
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U citywatch --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 > "$STACK_DIR/postgres/initdb.log"
    rm -f "$pwfile"
    say "PostgreSQL cluster created in $PG_DATA"
  fi
  if as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; then
    say "postgresql runs already"
  else
    port_free "$PG_PORT" || fail "port $PG_PORT is taken (STACK_PG_PORT)"
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t "$WAIT_S" -l "$STACK_DIR/postgres/postgres.log" \
      -o "-p $PG_PORT -k $PG_RUN -c listen_addresses=$HOST" > /dev/null \
      || fail "PostgreSQL did not start: $(tail -5 "$STACK_DIR/postgres/postgres.log")"
  fi
  wait_for "postgresql on $HOST:$PG_PORT" "$PG_BIN/pg_isready" -h "$HOST" -p "$PG_PORT" -d postgres \
    || fail "PostgreSQL does not answer on $HOST:$PG_PORT"
  if ! PGPASSWORD="$(cat "$PG_PASSWORD_FILE")" "$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U citywatch -d postgres \
      -tAc "SELECT 1 FROM pg_database WHERE datname = 'citywatch'" | grep -q 1; then
    PGPASSWORD="$(cat "$PG_PASSWORD_FILE")" "$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U citywatch -d postgres \
      -qc "CREATE DATABASE citywatch" > /dev/null
  fi
}

gateway_env() {  # gateway_env N PORT: the settings of gateway N, in GATEWAY_ENV
  GATEWAY_ENV=(
    CITYWATCH_MQTT_URL="mqtt://$HOST:$MQTT_PORT"
    CITYWATCH_MQTT_SHARE_GROUP="$SHARE_GROUP"
    CITYWATCH_MQTT_CLIENT_ID="citywatch-gateway-$1"
    CITYWATCH_DB_URL="$(db_url)"
    CITYWATCH_HTTP_HOST="$HOST"
    CITYWATCH_HTTP_PORT="$2"
    CITYWATCH_DATA_DIR="$DATA_DIR"
  )
}

prepare_gateways() {
  mkdir -p "$DATA_DIR" "$STACK_DIR/logs"
  if [ ! -s "$TOKEN_FILE" ]; then
    # Migrates the schema first: once, before any gateway starts.
    local out
    gateway_env 0 0
    out="$(env "${GATEWAY_ENV[@]}" "$CITYWATCH" gateway token create --name local-stack-probe --role viewer)" \
      || fail "could not create the probe token: $out"
    umask 077
    tail -n 1 <<< "$out" > "$TOKEN_FILE"
    umask 022
    say "schema migrated; viewer token for /health and /metrics in $TOKEN_FILE"
  fi
}

healthy() {  # healthy URL: /health answers status ok
  curl -fsS --max-time 3 2>/dev/null -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$1/health" | grep -q '^{"status":"ok"'
}

start_gateway() {  # start_gateway N PORT
  local n="$1" port="$2" pidfile="$STACK_DIR/gateway-$1.pid" log="$STACK_DIR/logs/gateway-$1.log"
  local url="http://$HOST:$port"
  if alive "$pidfile" citywatch; then say "gateway $n runs already"; return; fi
  port_free "$port" || fail "port $port is taken (STACK_GATEWAY_PORTS)"
  gateway_env "$n" "$port"
  env "${GATEWAY_ENV[@]}" nohup "$CITYWATCH" gateway >> "$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + WAIT_S))
  until healthy "$url"; do
    alive "$pidfile" citywatch || fail "gateway $n exited: $(tail -5 "$log")"
    if [ $SECONDS -ge $deadline ]; then
      fail "gateway $n is not healthy after ${WAIT_S} s: $(curl -sS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$url/health" | head -c 800)"
    fi
    sleep 0.3
  done
  say "gateway $n is healthy on $url"
}

write_env() {
  local urls=()
  for port in "${GATEWAY_PORTS[@]}"; do urls+=("http://$HOST:$port"); done
  umask 077
  cat > "$STACK_DIR/stack.env" <<EOF
MQTT_URL=mqtt://$HOST:$MQTT_PORT
DB_URL=$(db_url)
GATEWAY_URLS="${urls[*]}"
SHARE_GROUP=$SHARE_GROUP
PROBE_TOKEN_FILE=$TOKEN_FILE
EOF
  umask 022
}

start() {
  mkdir -p "$STACK_DIR"
  STACK_DIR="$(cd "$STACK_DIR" && pwd)"
  set_paths
  # A failed start leaves nothing running.
  trap 'rc=$?; if [ $rc -ne 0 ]; then say "start failed; stopping what was started"; stop; fi' EXIT
  start_mosquitto
  start_postgres
  prepare_gateways
  local n=0
  for port in "${GATEWAY_PORTS[@]}"; do
    n=$((n + 1))
    start_gateway "$n" "$port"
  done
  trap - EXIT
  write_env
  say "up: MQTT mqtt://$HOST:$MQTT_PORT, ${#GATEWAY_PORTS[@]} gateways (group $SHARE_GROUP); see $STACK_DIR/stack.env"
}

stop_process() {  # stop_process NAME PIDFILE WORD GRACE_S
  local pid
  alive "$2" "$3" || { rm -f "$2"; return 0; }
  pid="$(cat "$2")"
  kill -TERM "$pid"
  local deadline=$((SECONDS + $4))
  while alive "$2" "$3"; do
    if [ $SECONDS -ge $deadline ]; then
      say "$1 did not stop within $4 s: killed"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$2"
  say "$1 stopped"
}

stop() {
  set +e
  [ -d "$STACK_DIR" ] || { say "nothing in $STACK_DIR"; return 0; }
  set_paths
  # Gateways first, newest first: each stores and acks what it holds, the broker keeps the rest queued.
  local pidfile
  for pidfile in $(ls -r "$STACK_DIR"/gateway-*.pid 2>/dev/null); do
    stop_process "$(basename "$pidfile" .pid)" "$pidfile" citywatch 40
  done
  stop_process mosquitto "$STACK_DIR/mosquitto/mosquitto.pid" mosquitto 20
  if [ -s "$PG_DATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 > /dev/null && say "postgresql stopped"
  fi
  set -e
}

status() {
  set_paths
  local pidfile
  alive "$STACK_DIR/mosquitto/mosquitto.pid" mosquitto && say "mosquitto runs" || say "mosquitto: stopped"
  as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" > /dev/null 2>&1 && say "postgresql runs" || say "postgresql: stopped"
  for pidfile in "$STACK_DIR"/gateway-*.pid; do
    [ -e "$pidfile" ] || continue
    alive "$pidfile" citywatch && say "$(basename "$pidfile" .pid) runs" || say "$(basename "$pidfile" .pid): stopped"
  done
}

# Where everything lives under STACK_DIR (once it is an absolute path: start resolves it first).
set_paths() {
  PG_DATA="$STACK_DIR/postgres/data"
  PG_RUN="$STACK_DIR/postgres/run"
  PG_PASSWORD_FILE="$STACK_DIR/postgres/password"
  TOKEN_FILE="$STACK_DIR/probe-token"
  DATA_DIR="$STACK_DIR/gateway-data"  # shared by the gateways: evidence, snapshots, telemetry.db, console key
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status (settings: see the head of this file)" >&2; exit 2 ;;
esac
