"""``dtx login/whoami/devices/stats/logout`` against the local stack, configuration errors and the session cache."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dualtetrax.cli import ExitCode, main
from dualtetrax.cloud.config import load_config
from dualtetrax.cloud.errors import ValidationError
from tests.cloud.local_support import PASSWORD, new_email
from tests.support.stack import LocalStack


@pytest.fixture
def env(stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    return {"DTX_DATABASE_URL": stack.dsn(), "DTX_TOKEN_CACHE": str(tmp_path / "cache" / "session.json"),
            "DTX_STORAGE_DIR": str(tmp_path / "storage"), "DTX_CONFIG": str(tmp_path / "none.toml"),
            "DTX_SUPABASE_URL": "", "SUPABASE_URL": "", "DTX_EMAIL": "", "DTX_PASSWORD": ""}


def dtx(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_login_whoami_devices_logout(env: dict[str, str]) -> None:
    email = new_email("cli")
    signed = dtx(env, "--json", "login", "--sign-up", "--email", email, "--password", PASSWORD,
                 "--timezone", "Asia/Tokyo")
    assert signed.exit_code == 0, signed.output
    cache = Path(env["DTX_TOKEN_CACHE"])
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600 and PASSWORD not in cache.read_text()

    who = json.loads(dtx(env, "--json", "whoami").output)
    assert who["profile"]["email"] == email and who["profile"]["timezone"] == "Asia/Tokyo"
    serial = f"DTX-{uuid.uuid4().hex[:8].upper()}"
    registered = dtx(env, "--json", "devices", "register", serial, "--nickname", "Desk")
    assert registered.exit_code == 0, registered.output
    [device] = json.loads(dtx(env, "--json", "devices", "list").output)["devices"]
    assert (device["serial_number"], device["nickname"]) == (serial, "Desk")
    text = dtx(env, "devices", "list").output
    assert serial in text and "Desk" in text

    bad = dtx(env, "--json", "devices", "rename", device["id"], "")
    assert bad.exit_code == ExitCode.CLOUD_REFUSED
    assert json.loads(bad.output)["error"]["field"] == "nickname"
    missing = dtx(env, "devices", "rename", str(uuid.uuid4()), "x")
    assert missing.exit_code == ExitCode.CLOUD_REFUSED and "device not found" in missing.output

    stats = json.loads(dtx(env, "--json", "stats", "--days", "3").output)
    assert len(stats["stats"]["periods"]) == 3 and stats["streaks"]["current"] == 0

    assert dtx(env, "logout").exit_code == 0
    after = dtx(env, "whoami")
    assert after.exit_code == ExitCode.NOT_SIGNED_IN and "dtx login" in after.output


def test_wrong_password_and_environment_sign_in(env: dict[str, str]) -> None:
    email = new_email("cli")
    assert dtx(env, "login", "--sign-up", "--email", email, "--password", PASSWORD).exit_code == 0
    assert dtx(env, "logout").exit_code == 0
    wrong = dtx(env, "login", "--email", email, "--password", "nope-nope")
    assert wrong.exit_code == ExitCode.NOT_SIGNED_IN and "Invalid login credentials" in wrong.output
    # scripts sign in from the environment when nothing is cached
    who = dtx({**env, "DTX_EMAIL": email, "DTX_PASSWORD": PASSWORD}, "--json", "whoami")
    assert who.exit_code == 0 and json.loads(who.output)["profile"]["email"] == email


def test_configuration_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as nothing:
        load_config({"DTX_CONFIG": str(tmp_path / "missing.toml")})
    assert nothing.value.field == "DTX_SUPABASE_URL"
    with pytest.raises(ValidationError) as keyless:
        load_config({"DTX_SUPABASE_URL": "https://abc.supabase.co", "DTX_CONFIG": str(tmp_path / "x.toml")})
    assert keyless.value.field == "DTX_SUPABASE_ANON_KEY"
    with pytest.raises(ValidationError) as scheme:
        load_config({"DTX_SUPABASE_URL": "abc.supabase.co", "DTX_SUPABASE_ANON_KEY": "k",
                     "DTX_CONFIG": str(tmp_path / "x.toml")})
    assert scheme.value.field == "DTX_SUPABASE_URL"
    broken = tmp_path / "broken.toml"
    broken.write_text("supabase_url = ")
    with pytest.raises(ValidationError) as toml:
        load_config({"DTX_CONFIG": str(broken)})
    assert toml.value.field == "DTX_CONFIG"
    good = tmp_path / "good.toml"
    good.write_text('supabase_url = "https://abc.supabase.co"\nsupabase_anon_key = "anon"\n')
    config = load_config({"DTX_CONFIG": str(good), "DTX_TOKEN_CACHE": str(tmp_path / "t.json")})
    assert (config.supabase_url, config.anon_key, config.deployment) == ("https://abc.supabase.co", "anon",
                                                                        "https://abc.supabase.co")
    result = CliRunner().invoke(main, ["--json", "whoami"], env={"DTX_CONFIG": str(tmp_path / "none.toml"),
                                                                 "DTX_DATABASE_URL": "", "DTX_SUPABASE_URL": "",
                                                                 "SUPABASE_URL": ""})
    assert result.exit_code == ExitCode.CLOUD_REFUSED
    assert json.loads(result.output)["error"]["field"] == "DTX_SUPABASE_URL"
