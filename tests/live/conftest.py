"""The live suite runs against a real Supabase project and is skipped (explicitly, with the reason) unless
SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY are set."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class LiveEnv:
    url: str
    anon_key: str
    service_role_key: str


@pytest.fixture(scope="session")
def live_env() -> LiveEnv:
    names = ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live Supabase suite: set {', '.join(missing)} to run it against a real project")
    return LiveEnv(os.environ["SUPABASE_URL"].rstrip("/"), os.environ["SUPABASE_ANON_KEY"],
                   os.environ["SUPABASE_SERVICE_ROLE_KEY"])
