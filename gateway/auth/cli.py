"""``citywatch gateway token create|revoke|list``. Standard library only at module level."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.auth.roles import TOKEN_ROLES, Role, token_role


def register(gateway_commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``token`` under the ``citywatch gateway`` subcommands."""
    token = gateway_commands.add_parser("token", help="API bearer tokens with roles")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="create a token; it is printed once and stored only hashed")
    create.add_argument("name", nargs="?", help="who holds it, e.g. city-dispatch or li.na")
    create.add_argument("--name", dest="name_option", metavar="NAME", help="the same, as an option")
    create.add_argument(
        "--role", required=True, type=_role, metavar="{" + ",".join(sorted(TOKEN_ROLES)) + "}"
    )
    create.set_defaults(handler=_create)
    revoke = token_sub.add_parser("revoke", help="revoke a token by id (see list)")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(handler=_revoke)
    list_ = token_sub.add_parser("list", help="list tokens (never their values)")
    list_.add_argument("--all", action="store_true", help="include revoked tokens")
    list_.set_defaults(handler=_list)


def _role(value: str) -> Role:
    try:
        return token_role(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sessions() -> Any:
    from gateway.db import make_engine, make_sessionmaker, migrate
    from gateway.settings import Settings

    engine = make_engine(Settings().DB_URL)
    migrate(engine)
    return make_sessionmaker(engine)


def _create(args: argparse.Namespace) -> int:
    from gateway.auth.service import create_token

    name = args.name_option if args.name_option is not None else args.name
    if name is None or (args.name is not None and args.name_option is not None):
        print("error: give the token's holder once, as NAME or --name NAME")
        return 2
    with _sessions()() as session, session.begin():
        try:
            issued = create_token(session, name=name, role=args.role)
        except ValueError as error:
            print(f"error: {error}")
            return 2
    print(f"token {issued.token_id} for {issued.name} ({issued.role.value}); shown once, keep it safe:")
    print(issued.token)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from gateway.auth.service import TokenNotFound, revoke_token

    with _sessions()() as session, session.begin():
        try:
            row = revoke_token(session, token_id=args.token_id)
        except TokenNotFound as error:
            print(f"error: {error}")
            return 1
    print(f"token {row.id} ({row.name}) revoked at {row.revoked_at}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from gateway.auth.service import list_tokens

    with _sessions()() as session:
        rows = list_tokens(session, include_revoked=args.all)
        print(f"{'ID':>4} {'NAME':<24} {'ROLE':<16} {'PREFIX':<12} {'CREATED':<26} REVOKED")
        for row in rows:
            revoked = row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-"
            print(
                f"{row.id:>4} {row.name:<24} {row.role:<16} {row.token_prefix:<12} "
                f"{row.created_at.isoformat(timespec='seconds'):<26} {revoked}"
            )
    return 0
