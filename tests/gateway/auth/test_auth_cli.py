"""``citywatch gateway token create|list|revoke`` against a real SQLite database."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.auth import cli
from gateway.auth.service import authenticate
from gateway.db import make_engine, make_sessionmaker, migrate


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="citywatch gateway")
    cli.register(parser.add_subparsers(dest="gateway_command"))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def test_create_list_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    monkeypatch.setenv("CITYWATCH_DB_URL", url)
    engine = make_engine(url)
    migrate(engine)  # the CLI migrates too; the table comes from migration 0002
    sessions = make_sessionmaker(engine)

    assert _run("token", "create", "city-dispatch", "--role", "dispatch_centre") == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with sessions() as session:
        principal = authenticate(session, token=token)
    assert principal is not None and principal.name == "city-dispatch"

    assert _run("token", "list") == 0
    listing = capsys.readouterr().out
    assert "city-dispatch" in listing and "dispatch_centre" in listing and token not in listing

    assert _run("token", "revoke", str(principal.token_id)) == 0
    assert "revoked" in capsys.readouterr().out
    with sessions() as session:
        assert authenticate(session, token=token) is None
    assert _run("token", "list") == 0
    assert "city-dispatch" not in capsys.readouterr().out
    assert _run("token", "list", "--all") == 0
    assert "city-dispatch" in capsys.readouterr().out

    assert _run("token", "revoke", "99") == 1
    assert "no token with id 99" in capsys.readouterr().out
    assert _run("token", "create", "  ", "--role", "viewer") == 2
    assert "needs a name" in capsys.readouterr().out
    assert _run("token", "create", "--name", "li.na", "--role", "installer") == 0
    assert "for li.na (installer)" in capsys.readouterr().out
    assert _run("token", "create", "--role", "viewer") == 2
    assert "as NAME or --name NAME" in capsys.readouterr().out
    engine.dispose()


def test_system_role_is_not_offered() -> None:
    with pytest.raises(SystemExit):
        _run("token", "create", "gw", "--role", "system")


def test_the_role_has_one_name_and_a_near_miss_is_told_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWATCH_DB_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
    with pytest.raises(SystemExit) as refused:
        _run("token", "create", "city-dispatch", "--role", "dispatch-centre")
    assert refused.value.code == 2
    assert "the role is spelled 'dispatch_centre'" in capsys.readouterr().err


def test_the_docs_name_roles_as_the_gateway_does() -> None:
    """README and gateway/README.md name each token role exactly as `--role` takes it."""
    from gateway.auth.roles import TOKEN_ROLES
    from tests.support.paths import PROJECT_ROOT

    for doc in (PROJECT_ROOT / "README.md", PROJECT_ROOT / "gateway" / "README.md"):
        text = doc.read_text()
        for role in TOKEN_ROLES:
            assert f"`{role.value}`" in text, f"{doc.name} does not name the role {role.value}"
        assert "dispatch-centre)" not in text and "`dispatch-centre`" not in text, doc.name
