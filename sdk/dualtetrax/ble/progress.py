"""Progress events and results of a firmware update (pure; no bleak)."""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


class OtaPhase(enum.StrEnum):
    """Where an update is. Values are stable strings, usable in logs and JSON."""

    CHECKING_IMAGE = "checking_image"
    CONNECTING = "connecting"
    PREPARING = "preparing"
    """Reading the device's version, status and battery; resetting a stale OTA state."""
    STARTING = "starting"
    """START written; waiting for the device to be ready to receive."""
    TRANSFERRING = "transferring"
    VALIDATING = "validating"
    APPLYING = "applying"
    REBOOTING = "rebooting"
    VERIFYING = "verifying"
    """Reconnected after the reboot; reading the new firmware revision."""
    DONE = "done"


@dataclass(frozen=True)
class OtaProgress:
    """One progress event. Rates are in bytes per second; ``eta_s`` is ``None`` until measurable."""

    phase: OtaPhase
    bytes_sent: int
    total_bytes: int
    elapsed_s: float
    rate_bps: float | None = None
    eta_s: float | None = None
    device_percent: int | None = None
    """Progress as the device reports it (status notifications), when known."""
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.bytes_sent / self.total_bytes if self.total_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "bytes_sent": self.bytes_sent,
            "total_bytes": self.total_bytes,
            "percent": round(100 * self.fraction, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_bps": None if self.rate_bps is None else round(self.rate_bps, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "device_percent": self.device_percent,
            "message": self.message,
        }


@dataclass(frozen=True)
class OtaResult:
    """A completed update."""

    address: str
    previous_version: str | None
    new_version: str | None
    image_version: str
    image_sha256: str
    image_size: int
    chunk_size: int
    chunk_count: int
    mtu: int
    transfer_s: float
    total_s: float
    verified: bool
    """True when the device was seen running ``image_version`` after its reboot."""
    attempts: int = 1

    @property
    def rate_bps(self) -> float:
        return self.image_size / self.transfer_s if self.transfer_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "previous_version": self.previous_version,
            "new_version": self.new_version,
            "image_version": self.image_version,
            "image_sha256": self.image_sha256,
            "image_size": self.image_size,
            "chunk_size": self.chunk_size,
            "chunk_count": self.chunk_count,
            "mtu": self.mtu,
            "transfer_s": round(self.transfer_s, 3),
            "total_s": round(self.total_s, 3),
            "rate_bps": round(self.rate_bps, 1),
            "verified": self.verified,
            "attempts": self.attempts,
        }


class RateMeter:
    """Throughput over a sliding window (default 2 s), for honest rates and ETAs.

    A window rather than a since-start average, so the rate follows the link as it is now
    (a stall shows at once); before the window holds 0.25 s of data there is no rate.
    """

    def __init__(self, window_s: float = 2.0, clock: Any = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, total_bytes: int) -> None:
        now = self._clock()
        self._samples.append((now, total_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    @property
    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 0.25:
            return None
        return (b1 - b0) / (t1 - t0)

    def eta(self, remaining_bytes: int) -> float | None:
        rate = self.rate
        if rate is None or rate <= 0:
            return None
        return remaining_bytes / rate
