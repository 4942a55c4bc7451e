"""`dtx-worker` command line."""

from __future__ import annotations

import argparse
import os
import sys

from dtx_worker.summary import print_summary

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtx-worker", description="DualTetraX worker")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="print what the database holds (users, devices, sessions, pending work)")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if args.command == "summary":
        return print_summary(url)
    return 2


if __name__ == "__main__":
    sys.exit(main())
