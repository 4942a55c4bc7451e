"""``dtx`` — the DualTetraX command line.

The root group owns the global options (``--json``, ``--verbose``) and registers command
groups from their own modules. Heavy dependencies (bleak, bumble, esptool, rich) are
imported inside commands, so ``dtx --help`` stays fast. To add a group, write a module
exposing a ``click.Group`` and register it below.
"""

from __future__ import annotations

import logging

import click

from dualtetrax import __version__
from dualtetrax.cli.ble import ble
from dualtetrax.cli.cloud import COMMANDS as CLOUD_COMMANDS
from dualtetrax.cli.emulator import emulator
from dualtetrax.cli.exit_codes import ExitCode
from dualtetrax.cli.firmware import firmware
from dualtetrax.cli.ota import ota
from dualtetrax.cli.rollout import rollout
from dualtetrax.cli.runtime import CliState

EPILOG = (
    "Exit codes: 0 ok, 1 error, 2 usage, 3 device not found, 4 connection failed or dropped, "
    "5 timeout, 6 invalid firmware image, 7 refused by the device (e.g. low battery), "
    "8 update failed on the device, 9 Bluetooth unavailable, 10 not signed in to the cloud, "
    "11 refused by the cloud, 12 cloud unreachable, 130 cancelled."
)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of failures.")
@click.version_option(__version__, prog_name="dtx")
@click.pass_context
def main(ctx: click.Context, as_json: bool, verbose: bool) -> None:
    """Tools for DualTetraX devices: BLE status and sessions, firmware updates, an emulator."""
    ctx.obj = CliState(json=as_json, verbose=verbose)
    _configure_logging(verbose)


class _EchoHandler(logging.Handler):
    """Log records as short lines on the current stderr (looked up per record)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _configure_logging(verbose: bool) -> None:
    """SDK warnings (e.g. a retried transfer) as short lines on stderr; the BLE stacks' own
    chatter only with --verbose. Leaves logging alone where it is already configured
    (an embedding application, a test runner), except for the stacks' levels."""
    for name in ("bumble", "bleak"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.CRITICAL)
    sdk_logger = logging.getLogger("dualtetrax")
    sdk_logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if logging.getLogger().handlers or any(isinstance(h, _EchoHandler) for h in sdk_logger.handlers):
        return
    handler = _EchoHandler()
    handler.setFormatter(
        logging.Formatter("%(name)s %(levelname)s: %(message)s" if verbose else "%(levelname)s: %(message)s")
    )
    # Not propagated: bumble calls the module-level logging.debug(), which installs a root
    # handler on the fly and would print every record a second time.
    for name in ("dualtetrax", "bumble", "bleak"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).propagate = False


main.add_command(ble)
main.add_command(ota)
main.add_command(emulator)
main.add_command(firmware)
main.add_command(rollout)
main.add_command(__import__("dualtetrax.cli.sync", fromlist=["sync"]).sync)
for _command in CLOUD_COMMANDS:
    main.add_command(_command)

__all__ = ["ExitCode", "main"]
