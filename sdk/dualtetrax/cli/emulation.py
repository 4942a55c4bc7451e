"""``--emulate``: run any device command against the emulated DualTetraX instead of a radio."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from dualtetrax.ble.backends import BleBackends
    from dualtetrax.emulator import EmulatedDualTetraX

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EmulationOptions:
    enabled: bool = False
    speed: str = "realistic"
    firmware_version: str = "1.0.0"
    generation: int = 2
    battery_percent: int = 100
    faults: tuple[tuple[str, Any], ...] = field(default=())
    state_file: str | None = None
    sessions: int | None = None


def _parse_faults(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    from dualtetrax.emulator.faults import Faults

    parsed = []
    for value in values:
        try:
            parsed.append(Faults.parse_assignment(value))
        except (ValueError, KeyError) as error:
            raise click.BadParameter(str(error)) from error
    return tuple(parsed)


def emulation_options(function: F) -> F:
    """Add the ``--emulate*`` options; the command receives ``emulation: EmulationOptions``."""
    options = [
        click.option(
            "--emulate",
            is_flag=True,
            help="Use an emulated DualTetraX (no Bluetooth needed). See docs/emulator.md.",
        ),
        click.option(
            "--emulate-speed",
            type=click.Choice(["realistic", "fast"]),
            default="realistic",
            show_default=True,
            help="realistic: the link is paced like LE 1M PHY with data length extension (~97 KB/s); "
            "fast: as fast as the CPU.",
        ),
        click.option(
            "--emulate-version", default="1.0.0", show_default=True, help="Firmware the emulated device runs."
        ),
        click.option(
            "--emulate-generation",
            type=click.Choice(["1", "2"]),
            default="2",
            show_default=True,
            help="Status protocol: 1 per-characteristic, 2 framed communication service.",
        ),
        click.option(
            "--emulate-battery", type=click.IntRange(0, 100), default=100, show_default=True, help="Battery level, %."
        ),
        click.option(
            "--emulate-fault",
            "emulate_faults",
            multiple=True,
            metavar="KNOB=VALUE",
            callback=_parse_faults,
            help="Make the emulated device misbehave, e.g. disconnect_after_bytes=20000 "
            "(repeatable; `dtx emulator faults` lists the knobs).",
        ),
        click.option(
            "--emulate-state",
            "emulate_state",
            metavar="PATH",
            default=None,
            help="Keep the emulated device (stored sessions, confirmed flags, firmware version) in this file, "
            "so that it survives the process; created on first use.",
        ),
        click.option(
            "--emulate-sessions",
            "emulate_sessions",
            type=click.IntRange(0, 1_000_000),
            default=None,
            help="Sessions stored on a new emulated device (default 3). Counts above 3 also include sessions "
            "recorded without a time sync and too-short ones. With --emulate-state, only when the file is new.",
        ),
    ]

    def wrapper(**kwargs: Any) -> Any:
        kwargs["emulation"] = EmulationOptions(
            enabled=kwargs.pop("emulate"),
            speed=kwargs.pop("emulate_speed"),
            firmware_version=kwargs.pop("emulate_version"),
            generation=int(kwargs.pop("emulate_generation")),
            battery_percent=kwargs.pop("emulate_battery"),
            faults=kwargs.pop("emulate_faults"),
            state_file=kwargs.pop("emulate_state"),
            sessions=kwargs.pop("emulate_sessions"),
        )
        return function(**kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


@dataclass
class DeviceEnvironment:
    """Where commands find devices: the platform's Bluetooth, or an emulated world."""

    backends: BleBackends
    device: EmulatedDualTetraX | None = None


@contextlib.asynccontextmanager
async def device_environment(options: EmulationOptions) -> AsyncIterator[DeviceEnvironment]:
    from dualtetrax.ble.backends import PLATFORM

    if not options.enabled:
        yield DeviceEnvironment(backends=PLATFORM)
        return
    from dualtetrax.ble.protocol.enums import StatusGeneration
    from dualtetrax.emulator import AirModel, EmulatorWorld, Faults, sample_sessions

    faults = Faults()
    faults.update(**dict(options.faults))
    air = AirModel.le_1m_dle() if options.speed == "realistic" else None
    async with EmulatorWorld(air=air) as world:
        device = await world.add_device(
            firmware_version=options.firmware_version,
            generation=StatusGeneration(options.generation),
            battery_percent=options.battery_percent,
            serial_number="DTX-EMU-0001",
            # Random session ids, as real devices make them (two emulated devices never share one).
            sessions=sample_sessions(options.sessions, mixed=options.sessions > 3, seed=secrets.randbits(62))
            if options.sessions is not None
            else sample_sessions(3),
            faults=faults,
            state_file=options.state_file,
        )
        yield DeviceEnvironment(backends=world.backends, device=device)
