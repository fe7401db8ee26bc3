"""The gateway's REST API as the installer's tools use it (standard library only: a desk or a device
needs no HTTP package). ``GATEWAY_API_URL`` and ``GATEWAY_API_TOKEN`` give the address and token."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    def __init__(self, status: int | None, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True, slots=True)
class GatewayApi:
    url: str
    token: str
    timeout_s: float = 10.0

    @classmethod
    def from_args(cls, url: str | None, token: str | None) -> GatewayApi:
        token = token or os.environ.get("GATEWAY_API_TOKEN", "")
        if not token:
            raise ApiError(None, "no API token: give --token or set GATEWAY_API_TOKEN (an installer token)")
        return cls((url or os.environ.get("GATEWAY_API_URL") or DEFAULT_URL).rstrip("/"), token)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.dumps(json.loads(detail).get("detail", detail))
            raise ApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {detail[:500]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(None, f"the gateway at {self.url} does not answer: {exc}") from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)
