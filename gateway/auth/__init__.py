"""Bearer tokens with roles: hashed storage, service functions, FastAPI dependencies.

``gateway.auth.roles`` is standard-library only; the other modules need the gateway extra.
"""

from gateway.auth.roles import TOKEN_ROLES, Role

__all__ = ["TOKEN_ROLES", "Role"]
