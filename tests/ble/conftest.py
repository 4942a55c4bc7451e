"""Fixtures for BLE tests: an emulated world reached through bleak's own BleakClient/BleakScanner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dualtetrax.emulator import EmulatorWorld
from dualtetrax.firmware import build_test_image


@pytest.fixture
async def world() -> AsyncIterator[EmulatorWorld]:
    async with EmulatorWorld() as emulated:
        yield emulated


@pytest.fixture(scope="session")
def image() -> bytes:
    """A small valid image reporting version 1.1.0 (tests stay fast; size-sensitive tests make their own)."""
    return build_test_image(version="1.1.0", size=16 * 1024)
