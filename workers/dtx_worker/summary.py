"""A one-screen summary of the database, shown by `make run`."""

from __future__ import annotations

import sys

import psycopg

COUNTS = [
    ("users", "select count(*) from public.profiles"),
    ("admins", "select count(*) from public.profiles where role = 'admin'"),
    ("devices", "select count(*) from public.devices"),
    ("usage sessions", "select count(*) from public.usage_sessions"),
    ("battery samples", "select count(*) from public.battery_samples"),
    ("days awaiting statistics", "select count(*) from public.stats_dirty_days"),
    ("daily statistics rows", "select count(*) from public.daily_statistics"),
    ("pending device transfers", "select count(*) from public.device_transfers where status = 'pending'"),
    ("published announcements", "select count(*) from public.announcements where is_published"),
]


def print_summary(database_url: str) -> int:
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            print(f"DualTetraX local stack: {database_url}")
            for label, sql in COUNTS:
                row = conn.execute(sql).fetchone()
                print(f"  {label:<28} {row[0] if row else 0:>10,}")
    except psycopg.OperationalError as exc:
        print(f"cannot reach the database at {database_url}: {exc}\nRun `make db` first.", file=sys.stderr)
        return 1
    return 0
