"""Offline-safe session sync: device → local outbox → cloud → confirm to the device (``docs/sync.md``).

>>> async with DualTetraXClient(address) as device:                    # doctest: +SKIP
...     with Outbox("~/.local/share/dualtetrax/outbox.sqlite") as outbox:
...         report = await sync_device(device, cloud, outbox)
"""

from dualtetrax.sync.engine import SyncEngine, SyncReport, sync_device
from dualtetrax.sync.outbox import DeviceMeta, Outbox, OutboxEntry
from dualtetrax.sync.payload import MIN_WORKING_S, Retimer, Timing, retime, upload_payload

__all__ = [
    "MIN_WORKING_S",
    "DeviceMeta",
    "Outbox",
    "OutboxEntry",
    "Retimer",
    "SyncEngine",
    "SyncReport",
    "Timing",
    "retime",
    "sync_device",
    "upload_payload",
]
