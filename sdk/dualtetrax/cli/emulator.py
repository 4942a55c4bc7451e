"""``dtx emulator``: helpers for working without a device."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import click

from dualtetrax.cli.runtime import json_mode, print_json


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]i?[bB]?)?\s*", value)
    if not match:
        raise click.BadParameter(f"expected a size like 65536, 64K or 1.5M, got {value!r}")
    number = float(match.group(1))
    unit = (match.group(2) or "").lower()
    factor = 1024 * 1024 if unit.startswith("m") else 1024 if unit.startswith("k") else 1
    return int(number * factor)


@click.group()
def emulator() -> None:
    """The emulated DualTetraX: test images and fault knobs (use --emulate on device commands)."""


@emulator.command("make-image")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--version", "version", default="1.1.0", show_default=True, help="Version in the app description.")
@click.option("--size", default="256K", show_default=True, callback=_parse_size, help="Image size, e.g. 64K, 1.5M.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (same as dtx --json).")
@click.pass_context
def make_image(ctx: click.Context, file: Path, version: str, size: int, as_json: bool) -> None:
    """Write a synthetic, valid ESP32-S3 application image to FILE.

    It passes every check a real image does (and the emulated device installs it), but holds
    no program: never flash it to real hardware.
    """
    from dualtetrax.firmware import build_test_image, inspect_image

    try:
        data = build_test_image(version=version, size=size)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--size") from error
    file.write_bytes(data)
    image = inspect_image(data)
    if json_mode(ctx, as_json):
        print_json(
            {"ok": True, "file": str(file), "version": image.version, "size": image.size, "sha256": image.sha256}
        )
    else:
        click.echo(f"Wrote {file} ({image.size:,} bytes, version {image.version}, SHA-256 {image.sha256}).")
        click.echo(f"Try it: dtx ota flash {file} --emulate")


@emulator.command()
@click.option("--json", "as_json", is_flag=True, help="JSON output (same as dtx --json).")
@click.pass_context
def faults(ctx: click.Context, as_json: bool) -> None:
    """List the fault knobs accepted by --emulate-fault KNOB=VALUE."""
    from dualtetrax.emulator.faults import Faults

    docs = _field_docs(Faults)
    defaults = Faults()
    rows = [
        {"knob": field.name, "default": _render(getattr(defaults, field.name)), "description": docs.get(field.name, "")}
        for field in dataclasses.fields(Faults)
    ]
    if json_mode(ctx, as_json):
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['knob']} (default {row['default']})\n    {row['description']}")


def _render(value: object) -> str:
    if isinstance(value, frozenset):
        return ",".join(sorted(getattr(v, "name", str(v)).lower() for v in value)) or "none"
    return str(value)


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal after each field) from the class source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for current, following in itertools.pairwise(body):
        if (
            isinstance(current, ast.AnnAssign)
            and isinstance(current.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[current.target.id] = " ".join(following.value.value.split())
    return docs
