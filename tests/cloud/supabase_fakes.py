"""Response bodies as Supabase's services send them, and a recording httpx mock for SupabaseCloudBackend tests.

Shapes follow what the 2.34.1 libraries parse: ``supabase_auth.types.Session``/``User`` (GoTrue's token and
signup answers), PostgREST's ``{"code","message","details","hint"}`` errors, Storage's
``{"statusCode","error","message"}`` errors and ``{"signedURL": "/object/sign/…?token=…"}``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

URL = "https://abcdefghijklmnop.supabase.co"
ANON = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImFiY2RlZmdoaWprbG1ub3AiLCJyb2xlIjoiYW5vbiJ9"
        ".YW5vbi1zaWduYXR1cmU")
USER_ID = "5f0c1c0e-8d3a-4a51-9a55-3f2b1d6c7e10"
EMAIL = "mina@example.test"

Handler = Callable[[httpx.Request], httpx.Response]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(sub: str = USER_ID, *, exp: int | None = None, session_id: str = "b1e2c3d4-0000-4000-8000-000000000001",
        email: str = EMAIL) -> str:
    """An HS256-shaped access token as GoTrue issues it (the signature is not checked by the client)."""
    now = int(time.time())
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    payload = {"iss": f"{URL}/auth/v1", "sub": sub, "aud": "authenticated", "exp": exp or now + 3600, "iat": now,
               "email": email, "phone": "", "app_metadata": {"provider": "email", "providers": ["email"]},
               "user_metadata": {"email": email, "email_verified": True, "phone_verified": False, "sub": sub},
               "role": "authenticated", "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
               "session_id": session_id, "is_anonymous": False}
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()),
                     _b64(uuid.uuid4().bytes)])


def user_body(user_id: str = USER_ID, email: str = EMAIL, metadata: dict[str, Any] | None = None,
              *, confirmed: bool = True) -> dict[str, Any]:
    stamp = "2026-11-22T02:30:11.123456Z"
    meta = {"email": email, "email_verified": confirmed, "phone_verified": False, "sub": user_id, **(metadata or {})}
    body: dict[str, Any] = {
        "id": user_id, "aud": "authenticated", "role": "authenticated", "email": email, "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": meta,
        "identities": [{"identity_id": "0b6a3f55-49a1-4f0e-9a4e-6d2a8f1c9e21", "id": user_id, "user_id": user_id,
                        "identity_data": meta, "provider": "email", "last_sign_in_at": stamp, "created_at": stamp,
                        "updated_at": stamp, "email": email}],
        "created_at": stamp, "updated_at": stamp, "is_anonymous": False,
    }
    if confirmed:
        body |= {"email_confirmed_at": stamp, "confirmed_at": stamp, "last_sign_in_at": stamp}
    else:
        body |= {"confirmation_sent_at": stamp}
    return body


def session_body(*, access_token: str | None = None, refresh_token: str = "q7tx3v2kplmn",
                 expires_in: int = 3600, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """GoTrue's answer to signup (autoconfirm) and /token: a session with the user."""
    now = int(time.time())
    return {"access_token": access_token or jwt(exp=now + expires_in), "token_type": "bearer",
            "expires_in": expires_in, "expires_at": now + expires_in, "refresh_token": refresh_token,
            "user": user_body(metadata=metadata)}


def auth_error(status: int, code: str, msg: str, *, api_version: bool = True) -> httpx.Response:
    """GoTrue's error: with ``X-Supabase-Api-Version: 2024-01-01`` (what the client asks for) ``{"code","msg"}``;
    the legacy shape is ``{"code": <status>, "error_code", "msg"}``."""
    if api_version:
        return httpx.Response(status, json={"code": code, "msg": msg},
                              headers={"X-Supabase-Api-Version": "2024-01-01"})
    return httpx.Response(status, json={"code": status, "error_code": code, "msg": msg})


def pg_error(status: int, code: str, message: str, details: str | None = None, hint: str | None = None
             ) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "details": details, "hint": hint, "message": message})


class Recorder:
    """A MockTransport handler: answers from ``routes`` (``(method, path)`` → response, or a list of responses
    served in order, or a handler) and records every request with its body read."""

    def __init__(self, routes: dict[tuple[str, str], Any] | None = None) -> None:
        self.routes: dict[tuple[str, str], Any] = dict(routes or {})
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(599, json={"message": f"unexpected {request.method} {request.url}"})
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(request)
        assert isinstance(answer, httpx.Response)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]

    def last(self) -> httpx.Request:
        return self.requests[-1]

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))
