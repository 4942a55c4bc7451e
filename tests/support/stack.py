"""Build a throwaway database through exactly the `make db` path (scripts/localstack.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalStack:
    port: int
    state_dir: Path
    fast: bool = True  # fsync off: fine for throwaway test clusters, not for benchmarks

    @property
    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            DTX_DB_PORT=str(self.port),
            DTX_STATE_DIR=str(self.state_dir),
            DTX_DB_FAST="1" if self.fast else "0",
            DTX_DB_SEED="0",
        )

    def dsn(self, user: str = "postgres") -> str:
        return f"postgresql://{user}:postgres@127.0.0.1:{self.port}/postgres"

    def run(self, command: str) -> None:
        res = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "localstack.py"), command],
            env=self.env, capture_output=True, text=True, cwd=ROOT,
        )
        if res.returncode != 0:
            raise RuntimeError(f"localstack {command} failed:\n{res.stdout}\n{res.stderr}")


def test_stack() -> LocalStack:
    """The test suite's own cluster: a separate port and state dir, so it never touches `make db`'s."""
    port = int(os.environ.get("DTX_TEST_DB_PORT", "54329"))
    return LocalStack(port=port, state_dir=ROOT / ".local" / f"test-{port}")


def bench_stack(port: int = 54331) -> LocalStack:
    """A benchmark's cluster, with durable commits like a real server."""
    return LocalStack(port=port, state_dir=ROOT / ".local" / f"bench-{port}", fast=False)
