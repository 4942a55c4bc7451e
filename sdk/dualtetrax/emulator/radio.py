"""The emulated radio: bumble's in-process ``LocalLink`` plus an optional air-time model.

bumble's virtual controller returns every ACL credit at once and ``LocalLink`` delivers
each packet on the next loop iteration, so on its own there is no notion of air time and
a writer is never slowed down. :class:`EmulatedController` adds what a real controller
does:

* it advertises data length extension buffers (251-byte LL payloads) — a bounded number
  of them (:attr:`AirModel.controller_buffers`, 8 by default, as small phone and ESP32
  controllers have);
* when the link has an :class:`AirModel`, every ACL fragment the host hands over occupies
  the shared air for its modelled duration, and only when it has "crossed" is it
  delivered to the peer and its buffer credit returned to the host
  (``Number_Of_Completed_Packets``, reported for up to 4 packets at a time, as
  controllers coalesce these events — and at once when nothing is left in the air).

So a host that wants to send faster than the air allows runs out of controller credits
and must wait — the flow control the SDK's OTA engine relies on. Without an air model
(``air=None``) the link is as fast as the CPU, which is what unit tests want.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from bumble import core, hci
from bumble.controller import Connection as ControllerConnection
from bumble.controller import Controller
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, TransportSink

logger = logging.getLogger(__name__)
_controller_logger = logging.getLogger("bumble.controller")
_host_logger = logging.getLogger("bumble.host")

#: Completed packets a paced controller reports per Number_Of_Completed_Packets event.
COMPLETION_BATCH = 4
_L2CAP_HEADER = 4
_ATT_WRITE_HEADER = 3
_OTA_CHUNK_HEADER = 4


@dataclass(frozen=True)
class AirModel:
    """Air time of LE data PDUs on one connection (Core Vol 6, Part B; anchors.md Table 3).

    Each data PDU of ``n`` payload bytes takes ``(preamble + 4 + 2 + n + 3) · 8 / rate``
    microseconds, followed by the peer's empty acknowledgement PDU and two inter-frame
    spaces of 150 µs. Connection events are assumed unlimited in length (the best case a
    real link reaches with long connection events), the link is unencrypted and nothing
    is lost, so the model is an upper bound that real links approach.
    """

    phy_mbps: int = 1
    """1 for LE 1M, 2 for LE 2M."""
    ll_max_payload: int = 251
    """Largest LL data PDU payload: 251 with data length extension, 27 without."""
    controller_buffers: int = 8
    """ACL buffers the controller offers the host (credits)."""
    t_ifs_us: float = 150.0

    @classmethod
    def le_1m_dle(cls) -> AirModel:
        """LE 1M PHY with data length extension: about 97 KB/s of OTA payload."""
        return cls(phy_mbps=1, ll_max_payload=251)

    @classmethod
    def le_2m_dle(cls) -> AirModel:
        """LE 2M PHY with data length extension: about 174 KB/s of OTA payload."""
        return cls(phy_mbps=2, ll_max_payload=251)

    @classmethod
    def le_1m_legacy(cls) -> AirModel:
        """LE 1M PHY without data length extension (27-byte PDUs)."""
        return cls(phy_mbps=1, ll_max_payload=27)

    @property
    def _overhead_bytes(self) -> int:
        preamble = 1 if self.phy_mbps == 1 else 2
        return preamble + 4 + 2 + 3  # preamble, access address, header, CRC

    def pdu_airtime_s(self, payload_bytes: int) -> float:
        """Seconds one data PDU with ``payload_bytes`` occupies the air, acknowledgement included."""
        data_us = (self._overhead_bytes + payload_bytes) * 8 / self.phy_mbps
        ack_us = self._overhead_bytes * 8 / self.phy_mbps
        return (data_us + ack_us + 2 * self.t_ifs_us) / 1e6

    def ota_capacity_bps(self) -> float:
        """The most firmware bytes per second the OTA protocol can move over this air.

        That is one write per LL PDU filled to the brim: the LL payload minus the L2CAP,
        ATT and 4-byte chunk-index headers, per PDU air time.
        """
        firmware = self.ll_max_payload - _L2CAP_HEADER - _ATT_WRITE_HEADER - _OTA_CHUNK_HEADER
        return firmware / self.pdu_airtime_s(self.ll_max_payload)

    def describe(self) -> str:
        return (
            f"LE {self.phy_mbps}M PHY, {self.ll_max_payload}-byte LL payloads, "
            f"{self.controller_buffers} controller buffers: {self.ota_capacity_bps() / 1000:.1f} kB/s "
            "of OTA payload at best"
        )


class EmulatedLink(LocalLink):
    """``LocalLink`` with one shared air channel, paced by an :class:`AirModel` (or not at all)."""

    def __init__(self, air: AirModel | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.air = air
        self._air_busy_until = 0.0
        self.pdus_on_air = 0
        self.bytes_on_air = 0
        self.air_busy_s = 0.0

    def reserve_air(self, payload_bytes: int) -> float:
        """Book the air for one PDU; return the loop time at which it has been delivered."""
        assert self.air is not None
        now = asyncio.get_running_loop().time()
        duration = self.air.pdu_airtime_s(payload_bytes)
        start = max(now, self._air_busy_until)
        self._air_busy_until = start + duration
        self.pdus_on_air += 1
        self.bytes_on_air += payload_bytes
        self.air_busy_s += duration
        return self._air_busy_until

    def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                      transport: core.PhysicalTransport, data: bytes) -> None:
        """Hand an LE L2CAP PDU to the peer's controller now rather than one loop iteration later (``LocalLink``
        does ``call_soon``). The sender is always a controller handling a packet its host queued (or, paced, a PDU
        whose air time has passed), i.e. a loop callback of its own, so nothing re-enters the sending host; the
        peer's controller keeps its packets to its host in order (:meth:`EmulatedController.send_hci_packet`)."""
        if transport != core.PhysicalTransport.LE or _controller_logger.isEnabledFor(logging.DEBUG):
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        destination = self.find_le_controller(destination_address)
        if destination is not None:
            destination.on_link_acl_data(sender_controller.random_address, transport, data)


class EmulatedController(Controller):
    """A bumble virtual controller with DLE-sized, bounded ACL buffers and optional air pacing."""

    def __init__(self, name: str, *, link: EmulatedLink, address: str) -> None:
        air = link.air or AirModel()
        # Read by the host at power-on (HCI_LE_Read_Buffer_Size).
        self.le_acl_data_packet_length = air.ll_max_payload
        self.total_num_le_acl_data_packets = air.controller_buffers
        super().__init__(name, link=link, public_address=address)
        self._emulated_link = link
        self._in_air: dict[int, int] = {}
        self._completed: dict[int, int] = {}
        self._to_host: deque[hci.HCI_Packet] = deque()
        self._drain_scheduled = False
        self._from_link = False

    # bumble formats every HCI packet into a debug string (with ANSI colours) even when debug
    # logging is off; that was about half the CPU of an emulated transfer. These two
    # overrides do what Controller's do, minus the formatting, unless debug logging is on.

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _controller_logger.isEnabledFor(logging.DEBUG):
            super().on_hci_packet(packet)
        elif isinstance(packet, hci.HCI_AclDataPacket):
            self.on_hci_acl_data_packet(packet)
        elif isinstance(packet, hci.HCI_Command):
            self.on_hci_command_packet(packet)
        else:
            super().on_hci_packet(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        # Packets for the host wait in one queue drained by one loop callback (in order, as bumble's call_soon per
        # packet). Data arriving from the link with nothing queued before it goes to the host at once: the
        # link callback is already a loop iteration of its own.
        if _controller_logger.isEnabledFor(logging.DEBUG):
            super().send_hci_packet(packet)
            return
        host = self.host
        if host is None:
            return
        if self._from_link and not self._to_host:
            _to_host(host, packet)
            return
        self._to_host.append(packet)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        queue = self._to_host
        try:
            while queue:
                packet = queue.popleft()
                host = self.host
                if host is not None:
                    _to_host(host, packet)
        finally:
            if queue and not self._drain_scheduled:  # a host handler raised: the rest still goes, in order
                self._drain_scheduled = True
                asyncio.get_running_loop().call_soon(self._drain)

    def on_link_acl_data(self, sender_address: hci.Address, transport: core.PhysicalTransport, data: bytes) -> None:
        self._from_link = True
        try:
            super().on_link_acl_data(sender_address, transport, data)
        finally:
            self._from_link = False

    def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
        link = self._emulated_link
        if link.air is None:
            super().on_hci_acl_data_packet(packet)
            return
        connection = self.find_connection_by_handle(packet.connection_handle)
        if connection is None:
            logger.debug("ACL data for unknown handle 0x%04X dropped", packet.connection_handle)
            return
        delivered_at = link.reserve_air(len(packet.data))
        self._in_air[connection.handle] = self._in_air.get(connection.handle, 0) + 1
        asyncio.get_running_loop().call_at(delivered_at, self._on_air_delivered, connection, packet)

    def _on_air_delivered(self, connection: ControllerConnection, packet: Any) -> None:
        handle = connection.handle
        self._in_air[handle] = self._in_air.get(handle, 1) - 1
        # The connection may have dropped while the PDU was "in the air": then it is lost,
        # and the host already reclaimed its credits when it saw the disconnection.
        if self.find_connection_by_handle(handle) is not connection:
            self._completed.pop(handle, None)
            return
        # Reassemble and forward to the peer at once ...
        connection.assembler.feed_packet(packet)
        # ... and return credits to our host the way controllers do: a few at a time in one
        # Number_Of_Completed_Packets event, and all of them once nothing is left in the air.
        done = self._completed.get(handle, 0) + 1
        if done >= COMPLETION_BATCH or self._in_air[handle] == 0:
            self._completed[handle] = 0
            self.send_hci_packet(
                hci.HCI_Number_Of_Completed_Packets_Event(connection_handles=[handle], num_completed_packets=[done])
            )
        else:
            self._completed[handle] = done


#: Packets handed between an emulated host and its controller as objects: both sides build exactly what the other
#: would parse from their bytes (pure data, never changed after sending). Everything else (commands and the
#: other events) goes through bytes and bumble's own parsing.
_AS_OBJECTS = (hci.HCI_AclDataPacket, hci.HCI_Number_Of_Completed_Packets_Event)


def _to_host(host: TransportSink, packet: hci.HCI_Packet) -> None:
    if isinstance(host, Host) and host.ready and isinstance(packet, _AS_OBJECTS):
        host.on_hci_packet(packet)
    else:
        host.on_packet(bytes(packet))


class EmulatedHost(Host):
    """bumble's ``Host`` without the per-packet debug formatting (see :class:`EmulatedController`), and ACL data
    handed to the emulated controller as objects rather than bytes to be parsed again."""

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        sink = self.hci_sink
        if _host_logger.isEnabledFor(logging.DEBUG) or self.snooper:
            super().send_hci_packet(packet)
        elif (isinstance(packet, hci.HCI_AclDataPacket) and isinstance(sink, AsyncPipeSink)
              and isinstance(sink.sink, EmulatedController)):
            sink.loop.call_soon(sink.sink.on_hci_packet, packet)
        elif sink:
            sink.on_packet(bytes(packet))

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _host_logger.isEnabledFor(logging.DEBUG) or self.snooper:
            super().on_hci_packet(packet)
        elif isinstance(packet, hci.HCI_AclDataPacket):
            self.on_hci_acl_data_packet(packet)
        elif isinstance(packet, hci.HCI_Event):
            self.on_hci_event_packet(packet)
        else:
            super().on_hci_packet(packet)
