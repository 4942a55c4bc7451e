#!/usr/bin/env python3
"""The local Supabase-compatible stack: a private PostgreSQL cluster, the platform layer, migrations, seed.

Standard library only, so it runs before the project's virtualenv exists.

    python3 scripts/localstack.py up       # idempotent: init + start + platform + db push + seed
    python3 scripts/localstack.py reset    # stop, delete the cluster, then `up`
    python3 scripts/localstack.py stop
    python3 scripts/localstack.py status
    python3 scripts/localstack.py url

Environment: DTX_DB_PORT (default 54322), DTX_STATE_DIR (default ./.local), DTX_DB_FAST=1 (fsync off,
for throwaway test clusters), DTX_DB_SEED=0 (skip seed.sql).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPABASE_CLI_VERSION = "2.122.1"
PASSWORD = "postgres"


class StackError(RuntimeError):
    """A problem a person can fix; the message says how."""


def log(msg: str) -> None:
    print(f"[localstack] {msg}", file=sys.stderr, flush=True)


def port() -> int:
    raw = os.environ.get("DTX_DB_PORT", "54322")
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise StackError(f"DTX_DB_PORT must be a port number between 1024 and 65535, got {raw!r}")
    return int(raw)


def state_dir() -> Path:
    return Path(os.environ.get("DTX_STATE_DIR", ROOT / ".local")).resolve()


def is_root() -> bool:
    return os.geteuid() == 0


def db_url(user: str = "postgres") -> str:
    return f"postgresql://{user}:{PASSWORD}@127.0.0.1:{port()}/postgres"


# --------------------------------------------------------------------------------------------- binaries


def pg_bindir() -> Path:
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates += [Path(p) for p in versions]
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "postgres").exists():
            ver = subprocess.run([str(c / "postgres"), "--version"], capture_output=True, text=True).stdout
            major = int(ver.split()[-1].split(".")[0])
            if major >= 15:
                return c
    raise StackError(
        "PostgreSQL >= 15 server binaries (initdb, pg_ctl, postgres) were not found.\n"
        "  Debian/Ubuntu: sudo apt-get install postgresql-15   (or any newer major version)\n"
        "  macOS:         brew install postgresql@15 && brew link postgresql@15 --force\n"
        "They are looked up via `pg_config --bindir` and /usr/lib/postgresql/*/bin."
    )


def psql_bin() -> str:
    p = pg_bindir() / "psql"
    if p.exists():
        return str(p)
    found = shutil.which("psql")
    if not found:
        raise StackError("psql was not found. Debian/Ubuntu: sudo apt-get install postgresql-client-15")
    return found


def supabase_cli() -> Path:
    """The pinned Supabase CLI from npm, installed under .local/npm."""
    prefix = ROOT / ".local" / "npm"
    exe = prefix / "node_modules" / ".bin" / "supabase"
    pkg = prefix / "node_modules" / "supabase" / "package.json"
    if exe.exists() and pkg.exists() and json.loads(pkg.read_text())["version"] == SUPABASE_CLI_VERSION:
        return exe
    if not shutil.which("npm") or not shutil.which("node"):
        raise StackError(
            "Node.js and npm are needed to install the Supabase CLI (npm package `supabase`).\n"
            "  Debian/Ubuntu: sudo apt-get install nodejs npm   (Node.js >= 18)\n"
            "  macOS:         brew install node"
        )
    log(f"installing the Supabase CLI {SUPABASE_CLI_VERSION} (npm) under {prefix}")
    prefix.mkdir(parents=True, exist_ok=True)
    run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
         f"supabase@{SUPABASE_CLI_VERSION}"],
    )
    if not exe.exists():
        raise StackError(f"npm did not install the supabase binary at {exe}")
    return exe


# --------------------------------------------------------------------------------------------- cluster


def cluster_dir() -> Path:
    """Where the data directory lives.

    As root, initdb refuses to run, so the cluster belongs to the `postgres` OS user and lives under /tmp
    (every parent of a checkout is not necessarily traversable by that user); .local/pgdata links to it.
    """
    link = state_dir() / "pgdata"
    if not is_root():
        return link
    digest = hashlib.sha1(str(state_dir()).encode()).hexdigest()[:10]
    return Path(f"/tmp/dtx-pg-{digest}-{port()}")


def as_pg_user(cmd: list[str]) -> list[str]:
    if not is_root():
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError(
            "Running as root, but there is no `postgres` OS user to own the cluster "
            "(initdb refuses to run as root). Create one: useradd --system postgres"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(shlex_quote, cmd))]


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def run(cmd: list[str], *, env: dict[str, str] | None = None, quiet: bool = False) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise StackError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    if not quiet and res.stdout.strip():
        print(res.stdout.rstrip(), file=sys.stderr)
    return res.stdout


def pg_ctl(*args: str) -> list[str]:
    return as_pg_user([str(pg_bindir() / "pg_ctl"), "-D", str(cluster_dir()), *args])


def is_running() -> bool:
    if not (cluster_dir() / "PG_VERSION").exists():
        return False
    res = subprocess.run(pg_ctl("status"), capture_output=True, text=True)
    return res.returncode == 0


def init_cluster() -> None:
    data = cluster_dir()
    state_dir().mkdir(parents=True, exist_ok=True)
    if (data / "PG_VERSION").exists():
        return
    log(f"creating a PostgreSQL cluster in {data}")
    data.mkdir(parents=True, exist_ok=True)
    pwfile = data.parent / f".{data.name}.pw"
    pwfile.write_text(PASSWORD + "\n")
    if is_root():
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
        data.chmod(0o700)
        link = state_dir() / "pgdata"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(data)
    try:
        run(
            as_pg_user([
                str(pg_bindir() / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ]),
            quiet=True,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    fast = os.environ.get("DTX_DB_FAST") == "1"
    conf = [
        "# written by scripts/localstack.py",
        f"port = {port()}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{data}'",
        "wal_level = logical",
        "max_connections = 200",
        "shared_buffers = 256MB",
        "timezone = 'UTC'",
        "log_timezone = 'UTC'",
        "log_min_messages = warning",
        "log_min_error_statement = panic",
    ]
    if fast:
        conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    with (data / "postgresql.auto.conf").open("a") as fh:
        fh.write("\n".join(conf) + "\n")


def start() -> None:
    if is_running():
        return
    logfile = cluster_dir().parent / f"{cluster_dir().name}.log"
    log(f"starting PostgreSQL on 127.0.0.1:{port()} (log: {logfile})")
    if is_root():
        logfile.touch()
        shutil.chown(logfile, "postgres", "postgres")
    res = subprocess.run(
        pg_ctl("-l", str(logfile), "-w", "-t", "60", "start"), capture_output=True, text=True
    )
    if res.returncode != 0:
        tail = logfile.read_text()[-2000:] if logfile.exists() else ""
        raise StackError(
            f"PostgreSQL did not start on port {port()}: {res.stderr.strip()}\n{tail}\n"
            f"Is another server using port {port()}? Set DTX_DB_PORT to use another port."
        )


def stop() -> None:
    if is_running():
        log("stopping PostgreSQL")
        run(pg_ctl("-m", "fast", "-w", "stop"), quiet=True)


def psql(sql_file: Path | None = None, command: str | None = None) -> str:
    cmd = as_pg_user([
        psql_bin(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(cluster_dir()), "-p", str(port()),
        "-U", "postgres", "-d", "postgres", "-At",
    ])
    if sql_file is not None:
        cmd += ["-f", str(sql_file)]
    if command is not None:
        cmd += ["-c", command]
    return run(cmd, quiet=True)


# --------------------------------------------------------------------------------------------- layers


def apply_platform() -> None:
    """supabase/platform/*.sql: what a Supabase project already has. Applied once per cluster."""
    done = psql(command="select to_regclass('auth.users') is not null").strip() == "t"
    if done:
        return
    files = sorted((ROOT / "supabase" / "platform").glob("*.sql"))
    log(f"applying the local platform layer ({len(files)} files)")
    for f in files:
        if is_root():
            # the postgres OS user may not reach the checkout; feed the file through stdin instead
            cmd = as_pg_user([
                psql_bin(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(cluster_dir()),
                "-p", str(port()), "-U", "postgres", "-d", "postgres",
            ])
            res = subprocess.run(cmd, input=f.read_text(), capture_output=True, text=True)
            if res.returncode != 0:
                raise StackError(f"{f.name} failed:\n{res.stderr}")
        else:
            psql(sql_file=f)


def push_migrations() -> None:
    """`supabase db push --db-url …`: exactly the command that deploys to a Supabase project."""
    cli = supabase_cli()
    seed = os.environ.get("DTX_DB_SEED", "1") != "0"
    log("supabase db push" + (" --include-seed" if seed else ""))
    env = dict(os.environ, SUPABASE_TELEMETRY_DISABLED="1", DO_NOT_TRACK="1")
    cmd = [str(cli), "db", "push", "--db-url", db_url() + "?sslmode=disable", "--yes", "--workdir", str(ROOT)]
    if seed:
        cmd.append("--include-seed")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        if "inserted before the last migration" in out:
            out += ("\n\nThis local database was built from an older checkout, whose migrations came in another order"
                    " than the files have now. Rebuild it with `make db-reset` (its data is the demo seed plus"
                    " whatever you added by hand).")
        raise StackError(f"supabase db push failed:\n{out}")
    for line in out.splitlines():
        if line.strip():
            log(f"  {line.strip()}")


def up() -> None:
    init_cluster()
    start()
    wait_ready()
    apply_platform()
    push_migrations()
    log(f"ready: {db_url()}")


def wait_ready() -> None:
    deadline = time.monotonic() + 30
    while True:
        res = subprocess.run(
            as_pg_user([str(pg_bindir() / "pg_isready"), "-h", str(cluster_dir()), "-p", str(port())]),
            capture_output=True, text=True,
        )
        if res.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise StackError(f"PostgreSQL on port {port()} is not accepting connections")
        time.sleep(0.2)


def reset() -> None:
    stop()
    data = cluster_dir()
    if data.exists():
        log(f"removing {data}")
        shutil.rmtree(data)
    up()


def status() -> None:
    print(f"cluster: {cluster_dir()}")
    print(f"running: {is_running()}")
    print(f"url:     {db_url()}")


def main(argv: list[str]) -> int:
    commands = {"up": up, "reset": reset, "stop": stop, "status": status, "url": lambda: print(db_url())}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[0]]()
    except StackError as exc:
        print(f"\nlocalstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
