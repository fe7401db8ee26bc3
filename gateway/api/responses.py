"""The error answers routes declare in OpenAPI, so that the schema lists every status a route gives.

The app declares 401 on every route (every route needs a token); a route declares ``FORBIDDEN`` when
its role check refuses some token role, and what its handler raises (``not_found``, ``conflict``,
``unavailable``). 422 is FastAPI's own (``HTTPValidationError``), and only FastAPI answers it: what
the schema allows is taken, and a valid request that does not fit what is stored is a 409.
tests/gateway/api/test_openapi_truth.py calls every route without a token, as each role and with
unknown ids, and fails on a status not declared or a body not as declared.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """What every error other than 422 answers (FastAPI's ``HTTPException`` body)."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(title="Detail", description="What went wrong, for people.")


Responses = dict[int | str, dict[str, Any]]


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description, **extra}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}

UNAUTHORIZED: Responses = {
    401: _error(
        "No bearer token, or an unknown or revoked one",
        headers={"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    )
}
FORBIDDEN: Responses = {403: _error("The token's role may not do this")}
# FastAPI answers 400 for a body it cannot read as text (not UTF-8); a body that is not JSON is a 422.
UNREADABLE_BODY: Responses = {400: _error("The body is not UTF-8 text")}


def content(media_type: str, description: str = "Successful Response") -> Responses:
    """A 200 that is not JSON (a file, CAP XML, an Atom feed)."""
    return {200: {"content": {media_type: {}}, "description": description}}


def not_found(what: str) -> Responses:
    return {404: _error(what)}


def conflict(what: str) -> Responses:
    return {409: _error(what)}


def unavailable(what: str) -> Responses:
    return {503: _error(what, headers=_RETRY_AFTER)}
