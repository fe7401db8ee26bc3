# The gateway image. Edge devices install the wheel directly (pip install 'citywatch' or '.[vision]').
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY citywatch ./citywatch
COPY edge ./edge
COPY gateway ./gateway
COPY simulators ./simulators
RUN pip install --no-cache-dir '.[gateway,influx,postgres]'
ENV CITYWATCH_HTTP_HOST=0.0.0.0 \
    CITYWATCH_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
CMD ["citywatch", "gateway"]
