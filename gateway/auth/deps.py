"""FastAPI dependencies: 401 without a valid bearer token, 403 with the wrong role.

@router.post("/events/{event_id}/accept")
def accept(event_id: int, caller: CallbackCaller, session: SessionDep) -> ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.deps import SessionDep
from gateway.auth.models import Principal
from gateway.auth.roles import TOKEN_ROLES, Role
from gateway.auth.service import authenticate

bearer_scheme = HTTPBearer(
    auto_error=False,  # we answer 401 (not FastAPI's 403) when the header is missing
    description="An API token: `Authorization: Bearer cw_...` (create one with `citywatch gateway token create`).",
)


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(session, token=credentials.credentials)
    # End the look-up's transaction: a long request (an SSE stream) must hold neither a pooled
    # connection nor a database snapshot (SQLite's WAL could not be checkpointed behind it).
    session.rollback()
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency letting through only callers holding one of ``roles``."""
    allowed = frozenset(roles)
    if not allowed or not allowed <= TOKEN_ROLES:
        raise ValueError(f"require_role needs token roles among: {', '.join(sorted(TOKEN_ROLES))}")
    names = ", ".join(sorted(allowed))

    def check_role(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role.value!r} may not do this; allowed: {names}",
            )
        return principal

    return check_role


# One alias per kind of route. Admin passes everywhere.
AnyCaller = Annotated[Principal, Depends(require_role(*TOKEN_ROLES))]  # read-only screens
DispatcherCaller = Annotated[Principal, Depends(require_role(Role.ADMIN, Role.DISPATCHER))]
CallbackCaller = Annotated[
    Principal, Depends(require_role(Role.ADMIN, Role.DISPATCHER, Role.DISPATCH_CENTRE))
]  # lifecycle callbacks (accept, resolve, reject, rate)
# People who may push an open event along: urge its department (admin, dispatcher, supervisor) or put
# it under supervision (admin, supervisor: the lifecycle table refuses a dispatcher with a 403).
EscalationCaller = Annotated[Principal, Depends(require_role(Role.ADMIN, Role.DISPATCHER, Role.SUPERVISOR))]
InstallerCaller = Annotated[Principal, Depends(require_role(Role.ADMIN, Role.INSTALLER))]  # devices, configs
AdminCaller = Annotated[Principal, Depends(require_role(Role.ADMIN))]  # tokens, routing
