"""The DualTetraX device client on ``bleak``.

>>> async with DualTetraXClient() as device:          # the first DualTetraX-… in range   # doctest: +SKIP
...     print(device.generation, await device.read_firmware_revision())
...     await device.sync_time()
...     for record in await device.pull_sessions():
...         print(record.session_id, record.working_duration_s)

Every operation has a timeout and a dropped link surfaces as
:class:`~dualtetrax.ble.errors.DeviceDisconnectedError` — never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from dualtetrax.ble.backends import PLATFORM, BleBackends
from dualtetrax.ble.errors import (
    BluetoothUnavailableError,
    CommandRejectedError,
    ConnectionFailedError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    GattError,
    MtuTooSmallError,
    ProtocolError,
    UnexpectedResponseError,
    UnsupportedDeviceError,
)
from dualtetrax.ble.protocol import uuids
from dualtetrax.ble.protocol.enums import SessionFilter, StatusGeneration
from dualtetrax.ble.protocol.messages import (
    RESPONSE_FOR,
    ConfirmSyncRequest,
    DeleteSessionRequest,
    GetSessionDetailRequest,
    GetSessionsRequest,
    GetSessionsResponse,
    Message,
    Response,
    SessionDetailResponse,
    StatusUpdate,
    TimeSyncRequest,
    decode_message,
)
from dualtetrax.ble.protocol.sessions import SessionRecord, SessionSummary
from dualtetrax.ble.protocol.status import (
    LEGACY_STATUS_CHARACTERISTICS,
    DeviceStatus,
    LegacyStatusAssembler,
)
from dualtetrax.ble.scanner import DiscoveredDevice, find_device, looks_like_address

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The app's request timeout on the Communication service.
REQUEST_TIMEOUT_S = 5.0
GATT_TIMEOUT_S = 10.0

Target = str | BLEDevice | DiscoveredDevice | None


def detect_generation(client: BleakClient) -> StatusGeneration:
    """Which status protocol the connected device exposes (generation 2 wins if both are present)."""
    services = client.services
    if services.get_service(uuids.COMM_SERVICE) is not None:
        return StatusGeneration.FRAMED
    if services.get_service(uuids.STATUS_SERVICE) is not None:
        return StatusGeneration.PER_CHARACTERISTIC
    return StatusGeneration.NONE


@dataclass(frozen=True)
class DeviceInfo:
    address: str
    name: str | None
    firmware_revision: str | None
    model_number: str | None
    serial_number: str | None
    hardware_revision: str | None
    generation: StatusGeneration
    mtu: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "firmware_revision": self.firmware_revision,
            "model_number": self.model_number,
            "serial_number": self.serial_number,
            "hardware_revision": self.hardware_revision,
            "status_generation": self.generation.value,
            "status_protocol": self.generation.label,
            "mtu": self.mtu,
        }


@dataclass(frozen=True)
class SessionList:
    """A GET_SESSIONS answer: ``total_count`` may exceed the summaries one frame carries."""

    total_count: int
    sessions: tuple[SessionSummary, ...]


_DISCONNECTED = object()
_WRITE_RX = f"write {uuids.COMM_RX}"


class DualTetraXClient:
    """A connection to one DualTetraX. Use as ``async with DualTetraXClient(target) as device``.

    ``target`` is a :class:`DiscoveredDevice`, a bleak ``BLEDevice``, an address, an
    advertised name, or ``None`` for the first device whose name starts with ``DualTetraX-``.
    """

    def __init__(
        self,
        target: Target = None,
        *,
        timeout: float = 10.0,
        scan_timeout: float = 10.0,
        backends: BleBackends = PLATFORM,
    ) -> None:
        self._target = target
        self._timeout = timeout
        self._scan_timeout = scan_timeout
        self.backends = backends
        self._bleak: BleakClient | None = None
        self._name: str | None = None
        self._address: str | None = None
        self.generation = StatusGeneration.NONE
        self.disconnected = asyncio.Event()
        self._closing = False
        self._request_lock = asyncio.Lock()
        self._pending: asyncio.Future[Response] | None = None
        self._comm_subscribed = False
        self._legacy_subscribed = False
        self._legacy = LegacyStatusAssembler()
        self._last_status: DeviceStatus | None = None
        self._status_queues: list[asyncio.Queue[object]] = []
        self._message_queues: list[asyncio.Queue[object]] = []
        self._disconnect_listeners: list[Callable[[], None]] = []
        self._characteristics: dict[str, BleakGATTCharacteristic] = {}

    # ------------------------------------------------------------------ connection

    @property
    def bleak_client(self) -> BleakClient:
        if self._bleak is None:
            raise DeviceDisconnectedError("Not connected.", hint="Call connect() or use 'async with'.")
        return self._bleak

    @property
    def is_connected(self) -> bool:
        return self._bleak is not None and self._bleak.is_connected and not self.disconnected.is_set()

    @property
    def address(self) -> str:
        return self._address or (self._bleak.address if self._bleak else "")

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def mtu(self) -> int:
        return self.bleak_client.mtu_size

    async def _resolve(self) -> BLEDevice:
        target = self._target
        if isinstance(target, DiscoveredDevice):
            self._name = target.name
            return target.ble_device
        if isinstance(target, BLEDevice):
            self._name = target.name
            return target
        if isinstance(target, str) and looks_like_address(target):
            found = await find_device(address=target, timeout_s=self._scan_timeout, backends=self.backends)
        elif isinstance(target, str):
            found = await find_device(name=target, timeout_s=self._scan_timeout, backends=self.backends)
        else:
            found = await find_device(timeout_s=self._scan_timeout, backends=self.backends)
        self._name = found.name
        return found.ble_device

    async def connect(self) -> None:
        """Find the device (unless given a ``BLEDevice``), connect and discover its services."""
        if self.is_connected:
            return
        device = await self._resolve()
        self._address = device.address
        self.disconnected = asyncio.Event()
        self._closing = False
        self._comm_subscribed = self._legacy_subscribed = False
        self._characteristics = {}
        client = BleakClient(
            device,
            disconnected_callback=self._on_bleak_disconnect,
            timeout=self._timeout,
            backend=self.backends.client,
        )
        try:
            async with asyncio.timeout(self._timeout + 5.0):
                await client.connect()
        except BleakDeviceNotFoundError as error:
            raise DeviceNotFoundError(f"{device.address} is no longer reachable ({error}).") from error
        except TimeoutError as error:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)
            raise ConnectionFailedError(
                f"Connecting to {device.address} timed out after {self._timeout:g} s."
            ) from error
        except (FileNotFoundError, PermissionError) as error:
            raise BluetoothUnavailableError(f"Bluetooth is not available on this computer ({error}).") from error
        except BleakError as error:
            raise ConnectionFailedError(f"Could not connect to {device.address}: {error}.") from error
        self._bleak = client
        self.generation = detect_generation(client)
        logger.debug("connected to %s, MTU %d, %s", device.address, client.mtu_size, self.generation.label)

    async def disconnect(self) -> None:
        """Disconnect (idempotent, bounded in time)."""
        client = self._bleak
        self._closing = True
        if client is not None:
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await asyncio.wait_for(client.disconnect(), 5.0)
        self._mark_disconnected()

    async def __aenter__(self) -> DualTetraXClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def add_disconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the link drops (also on a requested disconnect); returns a remover."""
        self._disconnect_listeners.append(listener)
        return lambda: self._disconnect_listeners.remove(listener) if listener in self._disconnect_listeners else None

    def _on_bleak_disconnect(self, _client: BleakClient) -> None:
        logger.debug("%s disconnected", self.address)
        self._mark_disconnected()

    def _mark_disconnected(self) -> None:
        if self.disconnected.is_set():
            return
        self.disconnected.set()
        error = DeviceDisconnectedError(f"{self.address or 'The device'} disconnected.")
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)
        for queue in self._status_queues + self._message_queues:
            queue.put_nowait(_DISCONNECTED)
        for listener in list(self._disconnect_listeners):
            listener()

    # ------------------------------------------------------------------ GATT helpers

    def characteristic(self, uuid_text: str) -> BleakGATTCharacteristic:
        """The characteristic object, or :class:`UnsupportedDeviceError` if the device lacks it."""
        client = self.bleak_client
        found = self._characteristics.get(uuid_text)
        if found is None:  # bleak's lookup by UUID scans every characteristic: once per connection is enough
            found = client.services.get_characteristic(uuid_text)
            if found is None:
                raise UnsupportedDeviceError(f"The device has no characteristic {uuid_text}.")
            self._characteristics[uuid_text] = found
        return found

    def has_characteristic(self, uuid_text: str) -> bool:
        return self._bleak is not None and self._bleak.services.get_characteristic(uuid_text) is not None

    async def gatt(self, operation: Awaitable[_T], what: str, timeout_s: float = GATT_TIMEOUT_S) -> _T:
        """Run a bleak operation with a timeout_s, mapping failures to typed errors."""
        if self.disconnected.is_set():
            if asyncio.iscoroutine(operation):
                operation.close()
            raise DeviceDisconnectedError(f"Cannot {what}: {self.address} is disconnected.")
        try:
            async with asyncio.timeout(timeout_s):
                return await self._mapped(operation, what)
        except TimeoutError as error:
            if self.disconnected.is_set():
                raise DeviceDisconnectedError(f"{self.address} disconnected during {what}.") from error
            raise DeviceTimeoutError(f"The device did not complete {what} within {timeout_s:g} s.") from error

    async def _mapped(self, operation: Awaitable[_T], what: str) -> _T:
        """:meth:`gatt` without its timeout (the caller bounds it): bleak failures mapped to typed errors."""
        try:
            return await operation
        except BleakGATTProtocolError as error:
            raise GattError(f"The device refused to {what}: {error}.", att_error=int(error.code)) from error
        except BleakError as error:
            if self.disconnected.is_set() or (self._bleak is not None and not self._bleak.is_connected):
                self._mark_disconnected()
                raise DeviceDisconnectedError(f"{self.address} disconnected during {what}.") from error
            raise GattError(f"Could not {what}: {error}.") from error

    async def read_characteristic(self, uuid_text: str, timeout_s: float = GATT_TIMEOUT_S) -> bytes:
        characteristic = self.characteristic(uuid_text)
        return bytes(await self.gatt(self.bleak_client.read_gatt_char(characteristic), f"read {uuid_text}", timeout_s))

    async def write_characteristic(
        self, uuid_text: str, data: bytes, *, response: bool, timeout_s: float = GATT_TIMEOUT_S
    ) -> None:
        characteristic = self.characteristic(uuid_text)
        await self.gatt(
            self.bleak_client.write_gatt_char(characteristic, data, response=response),
            f"write {uuid_text}",
            timeout_s,
        )

    async def start_notify(self, uuid_text: str, callback: Callable[[bytes], None]) -> None:
        characteristic = self.characteristic(uuid_text)
        await self.gatt(
            self.bleak_client.start_notify(characteristic, lambda _c, data: callback(bytes(data))),
            f"subscribe to {uuid_text}",
        )

    # ------------------------------------------------------------------ device information

    async def _read_text(self, uuid_text: str) -> str | None:
        if not self.has_characteristic(uuid_text):
            return None
        raw = await self.read_characteristic(uuid_text)
        return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()

    async def read_firmware_revision(self) -> str:
        """Device Information → Firmware Revision String (0x2A26)."""
        value = await self._read_text(uuids.FIRMWARE_REVISION)
        if value is None:
            raise UnsupportedDeviceError("The device has no Firmware Revision characteristic (0x2A26).")
        return value

    async def read_device_info(self) -> DeviceInfo:
        """Everything Device Information offers; fields the firmware lacks are ``None``."""
        return DeviceInfo(
            address=self.address,
            name=self.name,
            firmware_revision=await self._read_text(uuids.FIRMWARE_REVISION),
            model_number=await self._read_text(uuids.MODEL_NUMBER),
            serial_number=await self._read_text(uuids.SERIAL_NUMBER),
            hardware_revision=await self._read_text(uuids.HARDWARE_REVISION),
            generation=self.generation,
            mtu=self.mtu,
        )

    # ------------------------------------------------------------------ status

    def _require(self, generation: StatusGeneration, what: str) -> None:
        if self.generation is not generation:
            raise UnsupportedDeviceError(
                f"{what} needs the {generation.label} protocol; this device exposes {self.generation.label}."
            )

    async def _ensure_comm(self) -> None:
        self._require(StatusGeneration.FRAMED, "This operation")
        if not self._comm_subscribed:
            await self.start_notify(uuids.COMM_TX, self._on_comm_frame)
            self._comm_subscribed = True

    async def _ensure_legacy(self) -> None:
        if self._legacy_subscribed:
            return
        service = self.bleak_client.services.get_service(uuids.STATUS_SERVICE)
        assert service is not None
        buffered: list[tuple[str, bytes]] = []
        reading = True

        def on_value(characteristic_uuid: str, data: bytes) -> None:
            if reading:
                buffered.append((characteristic_uuid, data))  # applied after the initial reads, as the app does
            else:
                self._apply_legacy(characteristic_uuid, data)

        for characteristic in service.characteristics:
            if "notify" in characteristic.properties and characteristic.uuid in LEGACY_STATUS_CHARACTERISTICS:
                await self.start_notify(characteristic.uuid, functools.partial(on_value, characteristic.uuid))
        for characteristic in service.characteristics:
            if "read" in characteristic.properties and characteristic.uuid in LEGACY_STATUS_CHARACTERISTICS:
                value = await self.read_characteristic(characteristic.uuid)
                self._legacy.apply(characteristic.uuid, value)
        reading = False
        for characteristic_uuid, data in buffered:
            self._legacy.apply(characteristic_uuid, data)
        self._legacy_subscribed = True
        self._publish_status(self._legacy.status)

    def _apply_legacy(self, characteristic_uuid: str, data: bytes) -> None:
        try:
            status = self._legacy.apply(characteristic_uuid, data)
        except ProtocolError as error:
            logger.warning("ignoring malformed status value: %s", error)
            return
        self._publish_status(status)

    def _publish_status(self, status: DeviceStatus) -> None:
        self._last_status = status
        for queue in self._status_queues:
            queue.put_nowait(status)

    async def read_status(self, timeout_s: float = 3.0) -> DeviceStatus:
        """The current status. Generation 1 reads every field; generation 2 returns the latest
        STATUS_UPDATE, waiting up to ``timeout_s`` for one if none arrived yet."""
        if self.generation is StatusGeneration.PER_CHARACTERISTIC:
            if self._legacy_subscribed:
                service = self.bleak_client.services.get_service(uuids.STATUS_SERVICE)
                assert service is not None
                for characteristic in service.characteristics:
                    if characteristic.uuid in LEGACY_STATUS_CHARACTERISTICS and "read" in characteristic.properties:
                        self._legacy.apply(characteristic.uuid, await self.read_characteristic(characteristic.uuid))
                self._last_status = self._legacy.status
                return self._legacy.status
            await self._ensure_legacy()
            return self._legacy.status
        self._require(StatusGeneration.FRAMED, "Reading the status")
        if self._last_status is not None and self._comm_subscribed:
            return self._last_status
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._status_queues.append(queue)
        try:
            await self._ensure_comm()
            if self._last_status is not None:
                return self._last_status
            async with asyncio.timeout(timeout_s):
                item = await queue.get()
        except TimeoutError as error:
            raise DeviceTimeoutError(
                f"The device sent no STATUS_UPDATE within {timeout_s:g} s.",
                hint="It sends its status when something changes; press a button on the device or try again.",
            ) from error
        finally:
            self._status_queues.remove(queue)
        if item is _DISCONNECTED:
            raise DeviceDisconnectedError(f"{self.address} disconnected while waiting for its status.")
        assert isinstance(item, DeviceStatus)
        return item

    def _skip_queued_statuses(self, queue: asyncio.Queue[object]) -> None:
        while not queue.empty():
            if queue.get_nowait() is _DISCONNECTED:
                raise DeviceDisconnectedError(f"{self.address} disconnected.")

    async def status_updates(self) -> AsyncGenerator[DeviceStatus, None]:
        """Live status: yields the current status, then every change, until the link drops
        (then raises :class:`~dualtetrax.ble.errors.DeviceDisconnectedError`)."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._status_queues.append(queue)
        try:
            if self.generation is StatusGeneration.PER_CHARACTERISTIC:
                await self._ensure_legacy()
                self._skip_queued_statuses(queue)  # the snapshot below already reflects them
                yield self._legacy.status
            elif self.generation is StatusGeneration.FRAMED:
                await self._ensure_comm()
                if self._last_status is not None:
                    self._skip_queued_statuses(queue)  # the snapshot below already reflects them
                    yield self._last_status
            else:
                raise UnsupportedDeviceError("The device exposes no status service.")
            while True:
                item = await queue.get()
                if item is _DISCONNECTED:
                    raise DeviceDisconnectedError(f"{self.address} disconnected.")
                assert isinstance(item, DeviceStatus)
                yield item
        finally:
            with contextlib.suppress(ValueError):
                self._status_queues.remove(queue)

    # ------------------------------------------------------------------ Communication service (generation 2)

    def _on_comm_frame(self, data: bytes) -> None:
        pending = self._pending
        try:
            message = decode_message(data)
        except ProtocolError as error:
            if pending is not None and not pending.done():
                pending.set_exception(error)
            else:
                logger.warning("ignoring malformed frame from %s: %s", self.address, error)
            return
        if isinstance(message, Response):
            if pending is not None and not pending.done():
                pending.set_result(message)
            else:
                logger.warning("unsolicited %s from %s", type(message).__name__, self.address)
            return
        if isinstance(message, StatusUpdate):
            self._publish_status(message.to_status())
        for queue in self._message_queues:
            queue.put_nowait(message)

    async def messages(self) -> AsyncGenerator[Message, None]:
        """Unsolicited generation-2 messages (STATUS_UPDATE, SESSION_START, SESSION_END,
        BATTERY_SAMPLE) as they arrive, until the link drops."""
        await self._ensure_comm()
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._message_queues.append(queue)
        try:
            while True:
                item = await queue.get()
                if item is _DISCONNECTED:
                    raise DeviceDisconnectedError(f"{self.address} disconnected.")
                assert isinstance(item, Message)
                yield item
        finally:
            with contextlib.suppress(ValueError):
                self._message_queues.remove(queue)

    async def request(self, request: Message, timeout_s: float = REQUEST_TIMEOUT_S) -> Response:
        """Send a request and return its response (one outstanding request at a time, as the
        protocol has no request id). Raises :class:`CommandRejectedError` on a non-success status.

        ``timeout_s`` bounds the write and the answer together (one deadline, one timer per request)."""
        if not self._comm_subscribed:
            await self._ensure_comm()
        elif self.generation is not StatusGeneration.FRAMED:
            self._require(StatusGeneration.FRAMED, "This operation")
        expected = RESPONSE_FOR[request.TYPE]
        async with self._request_lock:
            if self.disconnected.is_set():
                raise DeviceDisconnectedError(f"Cannot {_WRITE_RX}: {self.address} is disconnected.")
            client = self.bleak_client
            rx = self.characteristic(uuids.COMM_RX)
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            self._pending = future
            written = False
            try:
                async with asyncio.timeout(timeout_s):
                    await self._mapped(client.write_gatt_char(rx, request.encode(), response=True), _WRITE_RX)
                    written = True
                    response = await future
            except TimeoutError as error:
                if self.disconnected.is_set():
                    raise DeviceDisconnectedError(f"{self.address} disconnected during {_WRITE_RX}.") from error
                if not written:
                    raise DeviceTimeoutError(
                        f"The device did not complete {_WRITE_RX} within {timeout_s:g} s.") from error
                raise DeviceTimeoutError(
                    f"The device did not answer {request.TYPE.name} within {timeout_s:g} s."
                ) from error
            finally:
                self._pending = None
        if not isinstance(response, expected):
            raise UnexpectedResponseError(expected.TYPE, response.TYPE)
        if not response.ok:
            raise CommandRejectedError(request.TYPE, response.status)
        return response

    async def sync_time(self, at_ms: int | None = None) -> int:
        """TIME_SYNC with this computer's clock (Unix ms); the device has no RTC. Returns the time sent."""
        timestamp = at_ms if at_ms is not None else int(time.time() * 1000)
        await self.request(TimeSyncRequest(timestamp))
        return timestamp

    async def list_sessions(self, max_count: int = 10, *, unsynced_only: bool = True) -> SessionList:
        response = await self.request(
            GetSessionsRequest(max_count, SessionFilter.UNSYNCED if unsynced_only else SessionFilter.ALL)
        )
        assert isinstance(response, GetSessionsResponse)
        return SessionList(response.total_count, response.sessions)

    async def get_session(self, session_id: uuid.UUID) -> SessionRecord:
        response = await self.request(GetSessionDetailRequest(session_id))
        assert isinstance(response, SessionDetailResponse) and response.record is not None
        return response.record

    async def confirm_session(self, session_id: uuid.UUID) -> None:
        """CONFIRM_SYNC: tell the device the session is stored safely."""
        await self.request(ConfirmSyncRequest(session_id))

    async def delete_session(self, session_id: uuid.UUID) -> None:
        await self.request(DeleteSessionRequest(session_id))

    async def pull_sessions(self, *, confirm: bool = True, limit: int | None = None) -> list[SessionRecord]:
        """Read stored sessions the app's way: list unsynced, read each detail, confirm it; repeat
        until the device has none left (or ``limit`` records were read).

        Only confirm sessions once they are stored safely: confirmed sessions are not listed
        again. With ``confirm=False`` a single listing is read (the protocol has no paging).
        """
        records: list[SessionRecord] = []
        seen: set[uuid.UUID] = set()
        while limit is None or len(records) < limit:
            listing = await self.list_sessions(unsynced_only=True)
            fresh = [s for s in listing.sessions if s.session_id not in seen]
            if not listing.sessions and listing.total_count > 0:
                raise MtuTooSmallError(
                    f"The device holds {listing.total_count} unsynced session(s) but listed none: at MTU "
                    f"{self.mtu} a GET_SESSIONS response cannot carry a 32-byte summary."
                )
            if not fresh:
                break
            for summary in fresh:
                if limit is not None and len(records) >= limit:
                    break
                seen.add(summary.session_id)
                records.append(await self.get_session(summary.session_id))
                if confirm:
                    await self.confirm_session(summary.session_id)
            if not confirm:
                break
        return records
