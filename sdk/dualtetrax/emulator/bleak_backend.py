"""A bleak backend that reaches emulated devices over bumble's in-process link.

``BleakClient(device, backend=world.client_backend)`` and
``BleakScanner(backend=world.scanner_backend)`` then run bleak's own front end — UUID and
handle resolution, notification callback wrapping, ``disconnected_callback``, the
exception types — over a real GATT stack (bumble's ATT/GATT/L2CAP/HCI) instead of an OS
Bluetooth stack. Code written against bleak needs no change and no mock.

What it does that an OS stack does and bumble alone does not (see
``reference/ble-emulation.md``):

* exchanges the ATT MTU on connect (517 by default, like BlueZ);
* bounds the write-without-response queue: a write returns once the stack has room for it
  and waits otherwise, so writers are flow-controlled by the (emulated) controller;
* maps ATT errors to ``BleakGATTProtocolError`` and a link lost mid-operation to
  ``BleakError`` (never a bare ``CancelledError``, never a hang);
* enforces connect timeouts itself (bumble's own can hang on the virtual controller) and
  fails fast with ``BleakDeviceNotFoundError`` when nobody owns the address;
* removes its controller from the link when done.

Pairing is not emulated.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address
from bumble.transport.common import AsyncPipeSink

from dualtetrax.emulator.radio import EmulatedController, EmulatedHost, EmulatedLink

if TYPE_CHECKING:
    from bleak.args import SizedBuffer

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_central_numbers = itertools.count(1)

#: Write-without-response fragments the stack holds per controller buffer before a write waits.
HOST_QUEUE_FACTOR = 2


def _central_address() -> str:
    number = next(_central_numbers)
    return f"C0:00:00:00:{(number >> 8) & 0xFF:02X}:{number & 0xFF:02X}"


def _bleak_uuid(value: core.UUID) -> str:
    return str(uuid_module.UUID(bytes=value.to_bytes(force_128=True)[::-1]))


async def _make_central(link: EmulatedLink) -> tuple[Device, EmulatedController]:
    address = _central_address()
    controller = EmulatedController(f"central-{address}", link=link, address=address)
    device = Device(
        name="dtx-central", address=Address(address), host=EmulatedHost(controller, AsyncPipeSink(controller))
    )
    await device.power_on()
    return device, controller


def _drop_controller(link: EmulatedLink, controller: EmulatedController | None) -> None:
    if controller is not None and controller in link.controllers:
        link.remove_controller(controller)


class BumbleBleakClient(BaseBleakClient):
    """bleak client backend over an :class:`~dualtetrax.emulator.radio.EmulatedLink`.

    Use a subclass bound to a link (``EmulatorWorld.client_backend``); the unbound class
    refuses to connect.
    """

    link: ClassVar[EmulatedLink | None] = None
    requested_mtu: ClassVar[int | None] = 517
    """MTU asked for on connect (``None``: no exchange, the MTU stays 23)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._device: Device | None = None
        self._controller: EmulatedController | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._closing = False
        self._room = asyncio.Event()
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # ------------------------------------------------------------------ connection

    @property
    def name(self) -> str:
        return self._name or self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _link(self) -> EmulatedLink:
        link = type(self).link
        if link is None:
            raise BleakError("BumbleBleakClient is not bound to an emulator link; use EmulatorWorld.client_backend")
        return link

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        link = self._link()
        try:
            peer_address = Address(self.address)
        except (ValueError, core.InvalidArgumentError) as error:
            raise BleakDeviceNotFoundError(self.address, f"Invalid address {self.address!r}") from error
        if link.find_le_controller(peer_address) is None:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        timeout = kwargs.get("timeout", self._timeout)
        self._closing = False
        self._device, self._controller = await _make_central(link)
        connected = False
        try:
            async with asyncio.timeout(timeout):
                connection = await self._device.connect(peer_address, timeout=None)
                connected = True
                self._connection = connection
                connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
                self._peer = Peer(connection)
                queue = connection.data_packet_queue
                if queue is not None:
                    queue.on("flow", self._room.set)
                requested_mtu = type(self).requested_mtu
                if requested_mtu is not None:
                    await self._guard(self._peer.request_mtu(requested_mtu))
                self.services = await self._guard(self._discover())
        except asyncio.CancelledError:
            await self._teardown(disconnect=True)
            task = asyncio.current_task()
            if connected and task is not None and task.cancelling() == 0:
                # The link dropped during MTU exchange or discovery; bumble cancelled the request.
                raise BleakError("Disconnected while connecting") from None
            raise
        except BaseException:
            await self._teardown(disconnect=True)
            raise

    async def _discover(self) -> BleakGATTServiceCollection:
        assert self._peer is not None
        peer = self._peer
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services():
            bleak_service = BleakGATTService(service, service.handle, _bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await service.discover_characteristics():
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    _bleak_uuid(characteristic.uuid),
                    sorted(gatt_char_props_to_strs(int(characteristic.properties))),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in await characteristic.discover_descriptors():
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, _bleak_uuid(descriptor.type), bleak_characteristic
                        )
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        solicited = self._closing
        self._connection = None
        self._peer = None
        self._room.set()  # wake a writer waiting for room: it will see the link is gone
        _drop_controller(self._link(), self._controller)
        self._controller = None
        if not solicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _teardown(self, *, disconnect: bool) -> None:
        self._closing = True
        connection = self._connection
        if disconnect and connection is not None:
            try:
                async with asyncio.timeout(2.0):
                    await connection.disconnect()
            except (TimeoutError, core.BaseBumbleError, asyncio.CancelledError) as error:
                logger.debug("disconnect did not complete cleanly: %r", error)
        self._connection = None
        self._peer = None
        _drop_controller(self._link(), self._controller)
        self._controller = None
        self._device = None

    async def disconnect(self) -> None:
        await self._teardown(disconnect=True)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not emulated")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not emulated")

    # ------------------------------------------------------------------ I/O

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def _guard(self, operation: Awaitable[_T]) -> _T:
        """Map bumble failures to what an OS backend raises."""
        try:
            return await operation
        except att.ATT_Error as error:
            raise BleakGATTProtocolError(error.error_code) from error
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._connection is None and task is not None and task.cancelling() == 0:
                # bumble cancels a pending ATT request when the link drops.
                raise BleakError("Disconnected during a GATT operation") from None
            raise
        except core.TimeoutError as error:
            raise TimeoutError(str(error)) from error

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        return bytearray(await self._guard(peer.read_value(characteristic.obj)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        return bytearray(await self._guard(peer.read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        peer = self._require_peer()
        value = bytes(data)
        if response:
            await self._guard(peer.write_value(characteristic.obj, value, with_response=True))
            return
        if len(value) > self.mtu_size - 3:
            raise BleakError(
                f"Write without response of {len(value)} bytes exceeds the {self.mtu_size - 3} bytes "
                f"the MTU ({self.mtu_size}) allows"
            )
        await self._wait_for_room()
        await self._guard(peer.write_value(characteristic.obj, value, with_response=False))

    async def _wait_for_room(self) -> None:
        """Block while the stack's outgoing queue is full (the controller holds its credits)."""
        while True:
            connection = self._connection
            if connection is None:
                raise BleakError("Not connected")
            queue = connection.data_packet_queue
            if queue is None:
                return
            if queue.pending < HOST_QUEUE_FACTOR * queue.max_in_flight:
                return
            self._room.clear()
            await self._room.wait()

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        peer = self._require_peer()
        await self._guard(peer.write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer = self._require_peer()

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        await self._guard(peer.subscribe(characteristic.obj, deliver))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._guard(peer.unsubscribe(characteristic.obj, subscriber))


def _advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    local_name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    service_uuids: list[str] = []
    tx_power: int | None = None
    for ad_type, value in advertisement.data.ad_structures:
        if ad_type in (AdvertisingData.COMPLETE_LOCAL_NAME, AdvertisingData.SHORTENED_LOCAL_NAME):
            local_name = value.decode("utf-8", errors="replace")
        elif ad_type == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = value[2:]
        elif ad_type == AdvertisingData.TX_POWER_LEVEL and value:
            tx_power = int.from_bytes(value[:1], "little", signed=True)
        elif ad_type in _UUID_LIST_SIZES:
            size = _UUID_LIST_SIZES[ad_type]
            for offset in range(0, len(value) - size + 1, size):
                service_uuids.append(_bleak_uuid(core.UUID.from_bytes(value[offset : offset + size])))
        elif ad_type in _SERVICE_DATA_SIZES:
            size = _SERVICE_DATA_SIZES[ad_type]
            service_data[_bleak_uuid(core.UUID.from_bytes(value[:size]))] = value[size:]
    return AdvertisementData(
        local_name=local_name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


_UUID_LIST_SIZES = {
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA_SIZES = {
    AdvertisingData.SERVICE_DATA_16_BIT_UUID: 2,
    AdvertisingData.SERVICE_DATA_128_BIT_UUID: 16,
}


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend over an :class:`~dualtetrax.emulator.radio.EmulatedLink`."""

    link: ClassVar[EmulatedLink | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._device: Device | None = None
        self._controller: EmulatedController | None = None

    async def start(self) -> None:
        link = type(self).link
        if link is None:
            raise BleakError("BumbleBleakScanner is not bound to an emulator link; use EmulatorWorld.scanner_backend")
        self.seen_devices = {}
        self._device, self._controller = await _make_central(link)
        self._device.on(self._device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        device, controller = self._device, self._controller
        self._device = self._controller = None
        if device is not None:
            try:
                async with asyncio.timeout(2.0):
                    await device.stop_scanning()
            except (TimeoutError, core.BaseBumbleError) as error:
                logger.debug("stop_scanning did not complete: %r", error)
        if controller is not None and type(self).link is not None:
            _drop_controller(type(self).link, controller)  # type: ignore[arg-type]

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = _advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address.to_string(False)
        device = self.create_or_update_device(address, address, data.local_name, advertisement, data)
        self.call_detection_callbacks(device, data)
