"""Who may do what. Standard library only, so the lifecycle table can name roles without SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # everything, including tokens and routing
    DISPATCHER = "dispatcher"  # the district centre's operators: dispatch, verify, cancel
    INSTALLER = "installer"  # field technicians: devices and their configuration
    VIEWER = "viewer"  # read-only screens
    DISPATCH_CENTRE = "dispatch_centre"  # the city's dispatch system calling back (integration)
    SYSTEM = "system"  # the gateway itself (routing, escalation, device conditions); never on a token


TOKEN_ROLES = frozenset(Role) - {Role.SYSTEM}
