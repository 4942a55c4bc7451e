"""The local stack itself: `make db` is idempotent, migrations are recorded as the CLI records them, and the
seed loads cleanly."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support.stack import ROOT, LocalStack


def migration_versions() -> list[str]:
    return sorted(p.name.split("_", 1)[0] for p in (ROOT / "supabase" / "migrations").glob("*.sql"))


def test_every_migration_is_recorded_by_the_cli(db: psycopg.Connection) -> None:
    rows = db.execute("select version from supabase_migrations.schema_migrations order by version").fetchall()
    assert [r["version"] for r in rows] == migration_versions()


def test_migration_file_names(db: psycopg.Connection) -> None:
    for p in (ROOT / "supabase" / "migrations").glob("*.sql"):
        stamp, _, name = p.stem.partition("_")
        assert len(stamp) == 14 and stamp.isdigit() and name, p.name


def test_db_up_again_changes_nothing(stack: LocalStack, db: psycopg.Connection) -> None:
    before = db.execute("select count(*) as n from supabase_migrations.schema_migrations").fetchone()
    stack.run("up")
    assert db.execute("select count(*) as n from supabase_migrations.schema_migrations").fetchone() == before


def test_seed_loads(db: psycopg.Connection) -> None:
    seed = Path(ROOT / "supabase" / "seed.sql").read_text()
    with db.transaction(force_rollback=True):
        db.execute(seed)
        counts = db.execute(
            "select (select count(*) from profiles where email like '%%.test') as users,"
            " (select count(*) from profiles where role = 'admin' and email = 'admin@dualtetrax.test') as admins,"
            " (select count(distinct timezone) from profiles where email like '%%@example.test') as timezones,"
            " (select count(*) from usage_sessions) as sessions,"
            " (select count(*) from stats_dirty_days) as dirty").fetchone()
        assert counts is not None
        assert counts["users"] >= 10 and counts["admins"] == 1 and counts["timezones"] >= 7
        assert counts["sessions"] > 200 and counts["dirty"] > 100
        again = db.execute(seed)  # loading twice is harmless
        assert again is not None
