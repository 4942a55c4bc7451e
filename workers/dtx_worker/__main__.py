"""`dtx-worker` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dtx_worker.config import DEFAULT_DATABASE_URL, ConfigError, load_settings
from dtx_worker.summary import print_summary


def run() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"dtx-worker: {exc}", file=sys.stderr)
        return 2
    from dtx_worker.logs import configure_logging
    from dtx_worker.runner import run_worker

    configure_logging(settings.log_level)
    return asyncio.run(run_worker(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtx-worker", description="DualTetraX worker")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="print what the database holds (users, devices, sessions, pending work)")
    sub.add_parser("run", help="process jobs and daily statistics until SIGTERM/SIGINT (configured by DATABASE_URL"
                               " and DTX_WORKER_* variables; see docs/worker.md)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        return print_summary(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    if args.command == "run":
        return run()
    return 2


if __name__ == "__main__":
    sys.exit(main())
