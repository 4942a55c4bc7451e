"""The emulated DualTetraX: a bumble GATT peripheral speaking the device's real protocol.

It exposes what device-protocol.md documents:

* Device Information (0x180A) with the Firmware Revision String (0x2A26), model number and,
  optionally, a serial number;
* one status protocol generation: the per-characteristic Realtime Status service
  (``12340000-…``, generation 1) or the framed Communication service (``12340001-…``,
  generation 2) with time sync and a RAM store of sessions (lost at reboot, like the real
  device's);
* the OTA service, which really reassembles the image by chunk index, enforces the battery
  thresholds (≥ 70 % to start, abort at ≤ 50 %), validates the image with the same ESP32
  checks as :mod:`dualtetrax.firmware` (as the bootloader would), reports
  VALIDATING → UPGRADING → SUCCESS, then reboots and comes back advertising the version
  from the image's app description.

:class:`~dualtetrax.emulator.faults.Faults` makes it misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address, HCI_ErrorCode
from bumble.transport.common import AsyncPipeSink

from dualtetrax.ble.errors import ProtocolError
from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import (
    BatteryState,
    DeviceLevel,
    DeviceMode,
    MessageType,
    OtaCommand,
    OtaErrorCode,
    OtaState,
    ResponseStatus,
    SessionFilter,
    ShotType,
    StatusGeneration,
    SyncStatus,
    WarningFlags,
    WorkingState,
)
from dualtetrax.ble.protocol.messages import (
    RESPONSE_FOR,
    ConfirmSyncRequest,
    ConfirmSyncResponse,
    DeleteSessionRequest,
    DeleteSessionResponse,
    GetSessionDetailRequest,
    GetSessionsRequest,
    GetSessionsResponse,
    Message,
    SessionDetailResponse,
    SessionEnded,
    SessionStarted,
    StatusUpdate,
    TimeSyncRequest,
    TimeSyncResponse,
    decode_message,
)
from dualtetrax.ble.protocol.ota import (
    ABORT_BATTERY_PERCENT,
    MIN_START_BATTERY_PERCENT,
    OtaStatus,
    StartCommand,
    decode_chunk,
    decode_control,
)
from dualtetrax.ble.protocol.sessions import SessionRecord, SessionSummary
from dualtetrax.ble.protocol.status import DeviceStatus, encode_legacy_characteristics
from dualtetrax.emulator.faults import Faults
from dualtetrax.emulator.radio import EmulatedController, EmulatedHost, EmulatedLink
from dualtetrax.emulator.state import DeviceStateFile
from dualtetrax.firmware.errors import ChecksumMismatchError, DigestMismatchError, FirmwareImageError
from dualtetrax.firmware.image import MAX_IMAGE_SIZE, inspect_image

logger = logging.getLogger(__name__)

_SIG_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_APPLICATION_ERROR = 0x80


def _gatt_uuid(text: str) -> core.UUID:
    if text.endswith(_SIG_SUFFIX) and text.startswith("0000"):
        return core.UUID.from_16_bits(int(text[4:8], 16))
    return core.UUID(text)


def _percent_to_mv(percent: int) -> int:
    return 3200 + 10 * max(0, min(100, percent))


@dataclass
class StoredSession:
    record: SessionRecord
    synced: bool = False


@dataclass
class _OtaSession:
    """The image being received."""

    size: int
    expected_chunks: int
    buffer: bytearray
    chunk_size: int = 0
    next_index: int = 0
    received: int = 0


class EmulatedDualTetraX:
    """One emulated device on an :class:`~dualtetrax.emulator.radio.EmulatedLink`.

    Create it through :meth:`EmulatorWorld.add_device
    <dualtetrax.emulator.world.EmulatorWorld.add_device>` (which also starts it).
    """

    def __init__(
        self,
        link: EmulatedLink,
        *,
        address: str = "F0:F1:F2:F3:A1:B2",
        firmware_version: str = "1.0.0",
        generation: StatusGeneration = StatusGeneration.FRAMED,
        battery_percent: int = 100,
        serial_number: str | None = None,
        sessions: Iterable[SessionRecord] = (),
        faults: Faults | None = None,
        advertising_interval_ms: float = 20.0,
        name: str | None = None,
        state_file: str | Path | None = None,
        max_listed_sessions: int | None = None,
    ) -> None:
        """``state_file``: keep the stored sessions, their confirmed flags and the firmware version in
        this SQLite file across processes (see :class:`~dualtetrax.emulator.state.DeviceStateFile`).
        When the file already holds a device, its firmware version and sessions win over
        ``firmware_version`` and ``sessions``. ``max_listed_sessions``: a firmware cap on
        summaries per GET_SESSIONS answer; by default the answer holds as many as the request's
        ``max_count`` asks for and one frame at the negotiated MTU carries (15 at MTU 517)."""
        if generation is StatusGeneration.NONE:
            raise ValueError("an emulated DualTetraX exposes status generation 1 or 2")
        self.link = link
        self.address = address.upper()
        self.name = name or f"DualTetraX-{self.address.replace(':', '')[-4:]}"
        self.state = DeviceStateFile(state_file) if state_file is not None else None
        loaded: list[tuple[SessionRecord, bool]] = []
        if self.state is not None:
            firmware_version = self.state.initialise(firmware_version, sessions)
            loaded = self.state.load_sessions()
            sessions = [record for record, _synced in loaded]
        self._firmware_version = firmware_version
        self.max_listed_sessions = max_listed_sessions
        self.generation = generation
        self.serial_number = serial_number
        self.faults = faults or Faults()
        self.advertising_interval_ms = advertising_interval_ms
        self.status = DeviceStatus(
            generation=generation,
            shot=ShotType.U_SHOT,
            mode=DeviceMode.GLOW,
            level=DeviceLevel.LEVEL_1,
            working_state=WorkingState.STANDBY,
            battery_percent=battery_percent,
            battery_mv=_percent_to_mv(battery_percent),
            battery_state=BatteryState.SUFFICIENT,
            warnings=WarningFlags.NONE,
            elapsed_s=0,
            is_charging=False,
            session_active=False,
        )
        self.sessions: dict[uuid.UUID, StoredSession] = {s.session_id: StoredSession(s) for s in sessions}
        for record, synced in loaded:
            self.sessions[record.session_id].synced = synced
        self._unsynced: dict[uuid.UUID, None] = {}
        self._indexed_keys = -1
        self._link_traps: dict[MessageType, list[Any]] = {}
        self._busy: dict[MessageType, int] = {}
        self.time_offset_ms: int | None = None
        self.ota_status = OtaStatus(OtaState.IDLE, battery_percent=battery_percent)
        self.applied_image: bytes | None = None
        self.events: list[str] = []
        self.reboots = 0
        self.largest_data_write = 0
        """Largest OTA data write seen (bytes of the attribute value)."""
        self.status_reads = 0
        """Reads of the OTA Status characteristic (a client falling back from a lost notification)."""
        self.connections: list[Connection] = []

        self._ota: _OtaSession | None = None
        self._disconnect_fault_fired = False
        self._booting = False
        self._device: Device | None = None
        self._controller: EmulatedController | None = None
        self._outbox: asyncio.Queue[tuple[float, Characteristic[Any], bytes]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._characteristics: dict[str, Characteristic[Any]] = {}
        self._advertising = asyncio.Event()
        self._stopping = False
        self._notifier_task: asyncio.Task[None] | None = None
        self._hci_tasks: weakref.WeakSet[asyncio.Task[None]] = weakref.WeakSet()

    # ------------------------------------------------------------------ lifecycle

    @property
    def firmware_version(self) -> str:
        return self._firmware_version

    @firmware_version.setter
    def firmware_version(self, version: str) -> None:
        self._firmware_version = version
        if self.state is not None:
            self.state.set_firmware_version(version)

    @property
    def battery_percent(self) -> int:
        return self.status.battery_percent or 0

    @battery_percent.setter
    def battery_percent(self, percent: int) -> None:
        self.set_status(battery_percent=percent, battery_mv=_percent_to_mv(percent))

    @property
    def is_advertising(self) -> bool:
        return self._advertising.is_set()

    @property
    def is_connected(self) -> bool:
        return bool(self.connections)

    async def start(self) -> None:
        """Power on and start advertising."""
        self._controller = EmulatedController(f"dtx-{self.address}", link=self.link, address=self.address)
        device = Device(
            name=self.name,
            address=Address(self.address),
            host=EmulatedHost(self._controller, AsyncPipeSink(self._controller)),
        )
        self._device = device
        device.gatt_server.max_mtu = self.faults.max_mtu or 517
        device.add_services(self._build_services())
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self._notifier_task = self._spawn(self._notifier())
        await device.power_on()
        await self._start_advertising()

    async def stop(self) -> None:
        """Drop connections, stop advertising and leave the link."""
        self._stopping = True
        self._advertising.clear()
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.disconnect(), 1.0)
        # Let in-flight HCI exchanges (e.g. advertising setup) finish: cancelling them mid-command
        # leaves bumble's host with a cancelled future that the controller's answer then hits.
        busy = [task for task in self._tasks if task in self._hci_tasks]
        if busy:
            await asyncio.wait(busy, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._device is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._device.stop_advertising(), 1.0)
        if self._controller is not None and self._controller in self.link.controllers:
            self.link.remove_controller(self._controller)
        self._device = None
        if self.state is not None:
            self.state.close()

    async def set_advertising(self, enabled: bool) -> None:
        """Start or stop advertising (a device that is out of range or busy)."""
        if self._device is None:
            return
        if enabled:
            await self._start_advertising()
        else:
            self._advertising.clear()
            await self._device.stop_advertising()

    async def wait_advertising(self, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self._advertising.wait()

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _log(self, event: str) -> None:
        logger.debug("%s: %s", self.name, event)
        self.events.append(event)

    async def _start_advertising(self) -> None:
        assert self._device is not None
        data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                ]
            )
        )
        self._device.gatt_server.max_mtu = self.faults.max_mtu or 517
        await self._device.start_advertising(
            advertising_data=data,
            scan_response_data=data,
            auto_restart=False,
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )
        self._advertising.set()

    def _on_connection(self, connection: Connection) -> None:
        self._advertising.clear()
        self.connections.append(connection)
        self._log(f"connected {connection.peer_address.to_string(False)}")
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection, reason))

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        self._log(f"disconnected reason=0x{reason:02X}")
        if self._ota is not None or self.ota_status.state in (OtaState.DOWNLOADING, OtaState.ERROR):
            self._ota = None  # a partial image is discarded with the link
            self.ota_status = OtaStatus(OtaState.IDLE, battery_percent=self.battery_percent)
        if not self._booting and not self._stopping and self._device is not None:
            self._hci_tasks.add(self._spawn(self._start_advertising()))

    # ------------------------------------------------------------------ GATT

    def _build_services(self) -> list[Service]:
        def characteristic(
            uuid_text: str,
            properties: Characteristic.Properties,
            *,
            read: Callable[[Connection], bytes] | None = None,
            write: Callable[[Connection, bytes], None] | None = None,
        ) -> Characteristic[Any]:
            permissions = (Characteristic.READABLE if read else 0) | (Characteristic.WRITEABLE if write else 0)
            value: Any = CharacteristicValue(read=read, write=write) if (read or write) else b""
            made: Characteristic[Any] = Characteristic(
                _gatt_uuid(uuid_text), properties, Characteristic.Permissions(permissions), value
            )
            self._characteristics[uuid_text] = made
            return made

        read_notify = Characteristic.Properties.READ | Characteristic.Properties.NOTIFY
        device_information = [
            characteristic(uuids.MODEL_NUMBER, Characteristic.Properties.READ, read=lambda _c: b"DualTetraX"),
            characteristic(
                uuids.FIRMWARE_REVISION,
                Characteristic.Properties.READ,
                read=lambda _c: self.firmware_version.encode(),
            ),
        ]
        if self.serial_number is not None:
            device_information.append(
                characteristic(
                    uuids.SERIAL_NUMBER,
                    Characteristic.Properties.READ,
                    read=lambda _c: (self.serial_number or "").encode(),
                )
            )
        services = [Service(_gatt_uuid(uuids.DEVICE_INFORMATION_SERVICE), device_information)]

        if self.generation is StatusGeneration.PER_CHARACTERISTIC:
            fields = [
                characteristic(name, read_notify, read=functools.partial(self._legacy_value_for, name))
                for name in (
                    uuids.SHOT_TYPE,
                    uuids.MODE,
                    uuids.LEVEL,
                    uuids.WORKING_STATE,
                    uuids.BATTERY_STATUS,
                    uuids.WARNING_STATUS,
                    uuids.ELAPSED_TIME,
                )
            ]
            services.append(Service(_gatt_uuid(uuids.STATUS_SERVICE), fields))
        else:
            tx = characteristic(uuids.COMM_TX, Characteristic.Properties.NOTIFY)
            tx.on(tx.EVENT_SUBSCRIPTION, self._on_tx_subscription)
            rx = characteristic(uuids.COMM_RX, Characteristic.Properties.WRITE, write=self._on_comm_request)
            services.append(Service(_gatt_uuid(uuids.COMM_SERVICE), [tx, rx]))

        services.append(
            Service(
                _gatt_uuid(uuids.OTA_SERVICE),
                [
                    characteristic(uuids.OTA_CONTROL, Characteristic.Properties.WRITE, write=self._on_ota_control),
                    characteristic(
                        uuids.OTA_STATUS,
                        Characteristic.Properties.NOTIFY if self.faults.status_not_readable else read_notify,
                        read=self._read_ota_status,
                    ),
                    characteristic(
                        uuids.OTA_DATA,
                        Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
                        write=self._on_ota_data,
                    ),
                ],
            )
        )
        return services

    def _notify(self, characteristic_uuid: str, value: bytes, delay_s: float = 0.0) -> None:
        characteristic = self._characteristics.get(characteristic_uuid)
        if characteristic is None or self._device is None:
            return
        self._outbox.put_nowait((asyncio.get_running_loop().time() + delay_s, characteristic, value))

    async def _notifier(self) -> None:
        """Sends notifications in order; a delayed one leaves at its due time."""
        loop = asyncio.get_running_loop()
        while True:
            due, characteristic, value = await self._outbox.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            device = self._device
            if device is None or not self.connections:
                continue
            try:
                # Per connection: bumble's notify_subscribers spawns a task per bearer and waits for them all.
                for connection in list(self.connections):
                    await device.notify_subscriber(connection, characteristic, value)
            except Exception as error:  # a link dropping mid-notification is not the device's problem
                logger.debug("notification failed: %r", error)

    # ------------------------------------------------------------------ status

    def set_status(self, **changes: Any) -> DeviceStatus:
        """Change the live status (fields of :class:`DeviceStatus`) and notify subscribers."""
        previous = self.status
        if "battery_percent" in changes and "battery_mv" not in changes:
            changes["battery_mv"] = _percent_to_mv(changes["battery_percent"])
        self.status = dataclasses.replace(self.status, **changes)
        if self.generation is StatusGeneration.PER_CHARACTERISTIC:
            old = encode_legacy_characteristics(previous)
            for characteristic_uuid, value in encode_legacy_characteristics(self.status).items():
                if old[characteristic_uuid] != value:
                    self._notify(characteristic_uuid, value)
        else:
            self._notify(uuids.COMM_TX, self._status_update().encode())
        return self.status

    def start_demo_activity(self, interval_s: float = 1.0) -> None:
        """Make the device look used: a treatment that runs, pauses and changes mode, with the
        battery slowly draining — status notifications for tools that show live status."""
        self._spawn(self._demo_activity(interval_s))

    async def _demo_activity(self, interval_s: float) -> None:
        modes = [DeviceMode.GLOW, DeviceMode.TONEUP, DeviceMode.CLEAN, DeviceMode.LIFT, DeviceMode.LED_MODE]
        elapsed = 0
        for step in itertools.count(1):
            await asyncio.sleep(interval_s)
            mode = modes[(step // 6) % len(modes)]
            pausing = step % 6 == 5
            if not pausing:
                elapsed += round(interval_s)
            self.set_status(
                shot=mode.shot,
                mode=mode,
                level=DeviceLevel((step // 3) % 3 + 1),
                working_state=WorkingState.PAUSE if pausing else WorkingState.WORKING,
                elapsed_s=elapsed,
                session_active=True,
                battery_percent=max(5, self.battery_percent - (1 if step % 4 == 0 else 0)),
            )

    def _legacy_value_for(self, characteristic_uuid: str, _connection: Connection) -> bytes:
        return encode_legacy_characteristics(self.status)[characteristic_uuid]

    def _status_update(self) -> StatusUpdate:
        status = self.status
        return StatusUpdate(
            shot=status.shot,
            mode=status.mode,
            level=status.level,
            working_state=status.working_state,
            battery_mv=status.battery_mv or _percent_to_mv(self.battery_percent),
            battery_state=status.battery_state,
            warnings=status.warnings,
            elapsed_s=status.elapsed_s,
            is_charging=bool(status.is_charging),
            session_active=bool(status.session_active),
        )

    def _on_tx_subscription(self, _bearer: Any, notify_enabled: bool, _indicate: bool) -> None:
        if notify_enabled:
            self._notify(uuids.COMM_TX, self._status_update().encode())

    # ------------------------------------------------------------------ sessions (generation 2)

    def now_ms(self) -> int:
        """The device's idea of the time: the synced clock, or uptime-derived before a sync."""
        uptime_ms = int(time.monotonic() * 1000)
        return uptime_ms + self.time_offset_ms if self.time_offset_ms is not None else uptime_ms

    def add_session(self, record: SessionRecord, *, announce: bool = True) -> None:
        """Store a completed session; with ``announce``, also send SESSION_START and SESSION_END
        as a real treatment run would."""
        self.sessions[record.session_id] = StoredSession(record)
        self._unsynced[record.session_id] = None
        self._indexed_keys = len(self.sessions) if self._indexed_keys >= 0 else -1
        if self.state is not None:
            self.state.put_session(record)
        if announce and self.generation is StatusGeneration.FRAMED:
            self._notify(
                uuids.COMM_TX,
                SessionStarted(
                    record.session_id,
                    record.shot,
                    record.mode,
                    record.level,
                    record.led_pattern,
                    record.start_battery_mv,
                ).encode(),
            )
            self._notify(
                uuids.COMM_TX,
                SessionEnded(
                    record.session_id,
                    record.end_time_ms,
                    record.working_duration_s,
                    record.pause_duration_s,
                    record.pause_count,
                    record.termination_reason.value,
                    record.completion_percent,
                    record.end_battery_mv,
                    len(record.battery_samples),
                ).encode(),
            )

    def _unsynced_listing(self, limit: int) -> tuple[int, list[SessionRecord]]:
        """How many stored sessions are unconfirmed, and the first ``limit`` of them in storage order.

        Kept in an index so that a device holding thousands of sessions answers in constant time; the
        index is rebuilt whenever ``sessions`` was edited directly (its keys no longer match)."""
        index = self._unsynced
        if self._indexed_keys != len(self.sessions):
            index = self._reindex()
        listed: list[SessionRecord] = []
        stale: list[uuid.UUID] = []
        for session_id in index:
            if len(listed) >= limit:
                break
            stored = self.sessions.get(session_id)
            if stored is None or stored.synced:
                stale.append(session_id)  # confirmed or deleted since: dropped once, so this stays cheap
            else:
                listed.append(stored.record)
        for session_id in stale:
            del index[session_id]
        return len(index), listed

    def _reindex(self) -> dict[uuid.UUID, None]:
        self._unsynced = {key: None for key, stored in self.sessions.items() if not stored.synced}
        self._indexed_keys = len(self.sessions)
        return self._unsynced

    def _on_comm_request(self, connection: Connection, value: bytes) -> None:
        try:
            request = decode_message(value)
        except ProtocolError as error:
            self._log(f"comm: ignored malformed request ({error.detail})")
            return
        trap = self._link_traps.get(request.TYPE)
        if trap is not None:
            trap[0] -= 1
            if trap[0] <= 0:
                del self._link_traps[request.TYPE]
                if trap[1]:
                    self._answer(request, connection)  # handled, but the answer never leaves
                self._log(f"comm: dropping the link at {request.TYPE.name} (fault)")
                self._spawn(self._drop_link(connection))
                return
        if self._busy.get(request.TYPE, 0) > 0 and request.TYPE in RESPONSE_FOR:
            self._busy[request.TYPE] -= 1
            self._notify(uuids.COMM_TX, RESPONSE_FOR[request.TYPE](ResponseStatus.BUSY).encode())
            return
        response = self._answer(request, connection)
        if response is not None:
            self._notify(uuids.COMM_TX, response.encode())

    def answer_busy(self, request: MessageType, count: int) -> None:
        """Fault: answer the next ``count`` requests of this type with status BUSY (0x05), doing nothing."""
        self._busy[request] = count

    def drop_link_at(self, request: MessageType, nth: int = 1, *, handled: bool = False) -> None:
        """Fault: drop the link when the ``nth`` Communication-service request of this type arrives (counting
        from now, once). ``handled``: the device still acts on it (e.g. marks the session confirmed) but its
        answer is lost with the link — the worst moment for a client."""
        self._link_traps[request] = [nth, handled]

    def _answer(self, request: Message, connection: Connection) -> Message | None:
        if isinstance(request, TimeSyncRequest):
            self.time_offset_ms = request.timestamp_ms - int(time.monotonic() * 1000)
            self._log(f"time sync {request.timestamp_ms}")
            return TimeSyncResponse(ResponseStatus.SUCCESS)
        if isinstance(request, GetSessionsRequest):
            # One frame per notification: return only as many summaries as the MTU carries.
            fit = max(0, (connection.att_mtu - 3 - 3 - 3 - 1) // 32)
            limit = min(request.max_count, fit, self.max_listed_sessions or fit)
            if request.filter is SessionFilter.ALL:
                total = len(self.sessions)
                listed = [stored.record for stored in itertools.islice(self.sessions.values(), limit)]
            else:
                total, listed = self._unsynced_listing(limit)
            summaries = tuple(
                SessionSummary(
                    session_id=record.session_id,
                    start_time_ms=record.start_time_ms,
                    duration_s=record.working_duration_s,
                    shot=record.shot,
                    mode_code=record.mode_index,
                    level_code=record.level_index,
                    sync_status=SyncStatus.SYNCED_TO_APP
                    if self.sessions[record.session_id].synced
                    else SyncStatus.NOT_SYNCED,
                )
                for record in listed
            )
            return GetSessionsResponse(ResponseStatus.SUCCESS, total, summaries)
        if isinstance(request, GetSessionDetailRequest):
            stored = self.sessions.get(request.session_id)
            if stored is None:
                return SessionDetailResponse(ResponseStatus.NOT_FOUND)
            return SessionDetailResponse(ResponseStatus.SUCCESS, stored.record)
        if isinstance(request, ConfirmSyncRequest):
            stored = self.sessions.get(request.session_id)
            if stored is None:
                return ConfirmSyncResponse(ResponseStatus.NOT_FOUND)
            stored.synced = True
            if self.state is not None:
                self.state.mark_synced(request.session_id)  # durable before the answer leaves
            self._log(f"session confirmed {request.session_id}")
            return ConfirmSyncResponse(ResponseStatus.SUCCESS)
        if isinstance(request, DeleteSessionRequest):
            if self.sessions.pop(request.session_id, None) is None:
                return DeleteSessionResponse(ResponseStatus.NOT_FOUND)
            if self.state is not None:
                self.state.delete_session(request.session_id)
            self._log(f"session deleted {request.session_id}")
            return DeleteSessionResponse(ResponseStatus.SUCCESS)
        self._log(f"comm: no answer to {type(request).__name__}")
        return None

    # ------------------------------------------------------------------ OTA

    def _set_ota(self, state: OtaState, error: OtaErrorCode = OtaErrorCode.NONE, progress: int = 0) -> None:
        self.ota_status = OtaStatus(state, error, progress, self.battery_percent)
        if state in self.faults.drop_status:
            return
        self._notify(uuids.OTA_STATUS, self.ota_status.encode(), self.faults.status_delay_s)

    def _ota_fail(self, error: OtaErrorCode, why: str) -> None:
        self._ota = None
        self._log(f"ota: error {error.name} ({why})")
        self._set_ota(OtaState.ERROR, error, self.ota_status.progress)

    def _on_ota_control(self, connection: Connection, value: bytes) -> None:
        try:
            command = decode_control(value)
        except ProtocolError as error:
            raise att.ATT_Error(att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR, message=error.detail) from error
        if isinstance(command, StartCommand):
            self._ota_start(command)
        elif command.command is OtaCommand.FINISH:
            self._ota_finish()
        elif command.command is OtaCommand.CANCEL:
            self._ota = None
            self._log("ota: cancelled")
            self._set_ota(OtaState.IDLE)
        else:  # GET_INFO: format unknown upstream (device-protocol.md §9.5)
            raise att.ATT_Error(att.ATT_REQUEST_NOT_SUPPORTED_ERROR)

    def _ota_start(self, command: StartCommand) -> None:
        if self.faults.reject_start_att_error is not None:
            self._log(f"ota: START rejected with ATT error 0x{self.faults.reject_start_att_error:02X}")
            raise att.ATT_Error(self.faults.reject_start_att_error)
        if self.ota_status.state in (OtaState.VALIDATING, OtaState.UPGRADING, OtaState.SUCCESS):
            raise att.ATT_Error(_APPLICATION_ERROR)
        self._log(f"ota: START size={command.firmware_size} chunks={command.chunk_count}")
        if self.battery_percent < MIN_START_BATTERY_PERCENT:
            self._ota_fail(OtaErrorCode.LOW_BATTERY, f"battery {self.battery_percent} %")
            return
        if not 0 < command.firmware_size <= MAX_IMAGE_SIZE or command.chunk_count == 0:
            self._ota_fail(OtaErrorCode.SIZE_EXCEEDED, f"size {command.firmware_size}")
            return
        self._ota = _OtaSession(command.firmware_size, command.chunk_count, bytearray(command.firmware_size))
        self._set_ota(OtaState.DOWNLOADING, progress=0)

    def _read_ota_status(self, _connection: Connection) -> bytes:
        if self.faults.status_not_readable:
            raise att.ATT_Error(att.ATT_READ_NOT_PERMITTED_ERROR)
        self.status_reads += 1
        return dataclasses.replace(self.ota_status, battery_percent=self.battery_percent).encode()

    def _on_ota_data(self, connection: Connection, value: bytes) -> None:
        self.largest_data_write = max(self.largest_data_write, len(value))
        session = self._ota
        if session is None:
            return  # not receiving: the real firmware ignores stray chunks
        try:
            index, payload = decode_chunk(value)
        except ProtocolError:
            return  # shorter than 5 bytes: ignored, as in the firmware design
        if index in self.faults.drop_chunks:
            return
        if index != session.next_index:
            self._ota_fail(OtaErrorCode.WRITE_FAILED, f"expected chunk {session.next_index}, got {index}")
            return
        if index == 0:
            session.chunk_size = len(payload)
        offset = index * session.chunk_size
        if len(payload) > session.chunk_size or offset + len(payload) > session.size:
            self._ota_fail(OtaErrorCode.WRITE_FAILED, f"chunk {index} does not fit the announced size")
            return
        session.buffer[offset : offset + len(payload)] = payload
        session.next_index += 1
        before = session.received
        session.received += len(payload)
        faults = self.faults
        if faults.battery_drop_after_bytes is not None and before < faults.battery_drop_after_bytes <= session.received:
            self.set_status(battery_percent=faults.battery_drop_to)
            if self.battery_percent <= ABORT_BATTERY_PERCENT:
                self._ota_fail(OtaErrorCode.BATTERY_DROPPED, f"battery fell to {self.battery_percent} %")
                return
        if (
            faults.disconnect_after_bytes is not None
            and session.received >= faults.disconnect_after_bytes
            and (faults.disconnect_every_time or not self._disconnect_fault_fired)
        ):
            self._disconnect_fault_fired = True
            self._log(f"ota: dropping the link after {session.received} bytes (fault)")
            self._spawn(self._drop_link(connection))
            return
        progress = session.received * 100 // session.size
        if progress != self.ota_status.progress:
            self._set_ota(OtaState.DOWNLOADING, progress=progress)

    async def _drop_link(self, connection: Connection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.disconnect(HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR), 1.0)

    def _ota_finish(self) -> None:
        session = self._ota
        if session is None:
            raise att.ATT_Error(_APPLICATION_ERROR)
        if session.next_index != session.expected_chunks or session.received != session.size:
            self._ota_fail(
                OtaErrorCode.WRITE_FAILED,
                f"FINISH after {session.next_index}/{session.expected_chunks} chunks, "
                f"{session.received}/{session.size} bytes",
            )
            return
        image = bytes(session.buffer)
        self._ota = None
        self._log(f"ota: FINISH, {len(image)} bytes received")
        self._spawn(self._validate_and_apply(image))

    async def _validate_and_apply(self, image: bytes) -> None:
        faults = self.faults
        self._set_ota(OtaState.VALIDATING, progress=100)
        if faults.corrupt_received_byte is not None and faults.corrupt_received_byte < len(image):
            corrupted = bytearray(image)
            corrupted[faults.corrupt_received_byte] ^= 0xFF
            image = bytes(corrupted)
        if faults.validation_delay_s:
            await asyncio.sleep(faults.validation_delay_s)
        try:
            description = inspect_image(image)
        except FirmwareImageError as error:
            code = (
                OtaErrorCode.CHECKSUM_FAILED
                if isinstance(error, ChecksumMismatchError | DigestMismatchError)
                else OtaErrorCode.INVALID_IMAGE
            )
            self._ota_fail(code, error.detail)
            return
        self._set_ota(OtaState.UPGRADING, progress=100)
        if faults.apply_delay_s:
            await asyncio.sleep(faults.apply_delay_s)
        self.applied_image = image
        self._set_ota(OtaState.SUCCESS, progress=100)
        self._log(f"ota: success, rebooting into {description.version}")
        new_version = self.firmware_version if faults.boot_previous_version else description.version
        await self._reboot(new_version)

    async def _reboot(self, new_version: str) -> None:
        """Let the SUCCESS notification leave, drop the link, stay silent, come back."""
        await asyncio.sleep(0.05)
        self._booting = True
        self._advertising.clear()
        try:
            for connection in list(self.connections):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        connection.disconnect(HCI_ErrorCode.REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR),
                        1.0,
                    )
            await asyncio.sleep(self.faults.reboot_delay_s)
            self.firmware_version = new_version
            self.reboots += 1
            self.sessions.clear()  # RAM is lost at power-off
            if self.state is not None:
                self.state.clear_sessions()
            self.time_offset_ms = None
            self.ota_status = OtaStatus(OtaState.IDLE, battery_percent=self.battery_percent)
            self._log(f"booted {new_version}")
        finally:
            self._booting = False
        if self._device is not None and not self._stopping:
            restart = self._spawn(self._start_advertising())
            self._hci_tasks.add(restart)
            await asyncio.shield(restart)  # stop() lets it finish rather than cut an HCI exchange
