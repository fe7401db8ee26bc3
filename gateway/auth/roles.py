"""Who may do what. Standard library only, so the lifecycle table can name roles without SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # everything, including tokens and routing
    DISPATCHER = "dispatcher"  # the district centre's operators: dispatch, verify, cancel
    INSTALLER = "installer"  # field technicians: devices and their configuration
    VIEWER = "viewer"  # read-only screens
    SUPERVISOR = "supervisor"  # district manager, duty supervisor: read; supervise and urge events
    DISPATCH_CENTRE = "dispatch_centre"  # the city's dispatch system calling back (integration)
    SYSTEM = "system"  # the gateway itself (routing, escalation, device conditions); never on a token


TOKEN_ROLES = frozenset(Role) - {Role.SYSTEM}


def token_role(value: str) -> Role:
    """The role a token may be given, by its one name; a near miss (``dispatch-centre``) is told the name."""
    try:
        role = Role(value)
    except ValueError:
        spelled = value.strip().lower().replace("-", "_").replace(" ", "_")
        hint = f" (the role is spelled {spelled!r})" if spelled in {r.value for r in TOKEN_ROLES} else ""
        raise ValueError(
            f"unknown role {value!r}{hint}; roles are: {', '.join(sorted(TOKEN_ROLES))}"
        ) from None
    if role not in TOKEN_ROLES:
        raise ValueError(f"role {role.value!r} belongs to the gateway itself and cannot be given to a token")
    return role
