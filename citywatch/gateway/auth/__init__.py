"""Bearer tokens with roles: hashed storage, service functions, FastAPI dependencies.

``citywatch.gateway.auth.roles`` is standard-library only; the other modules need the gateway extra.
"""

from citywatch.gateway.auth.roles import TOKEN_ROLES, Role

__all__ = ["TOKEN_ROLES", "Role"]
