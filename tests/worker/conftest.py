"""Worker tests run against the local test stack only. A shell set up for the live suite exports SUPABASE_*,
which would switch every `dtx-worker run` started here to Realtime wake-ups and Supabase Storage; tests that
want Realtime pass the fake server's URL explicitly."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_supabase_project(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY"):
        monkeypatch.delenv(name, raising=False)
