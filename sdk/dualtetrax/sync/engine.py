"""Device → outbox → cloud → device: the offline-safe session sync.

Order of a sync (device-protocol.md §3.6 with the server in the middle):

1. TIME_SYNC (the device has no RTC; its answers depend on it). Registration of the device with the cloud if the
   user has not registered it yet.
2. Finish what an interrupted run left in the outbox: upload ``pulled`` sessions, confirm ``uploaded``/``skipped``/
   ``rejected`` ones to the device.
3. Rounds until the device lists nothing unconfirmed: GET_SESSIONS (unsynced) → GET_SESSION_DETAIL of the sessions
   not yet in the outbox (one request at a time) → one outbox transaction → ``upload_sessions`` (≤100 per call) →
   one outbox transaction → CONFIRM_SYNC (one at a time) → one outbox transaction. A listing of several new
   sessions is done in two halves whose cloud and BLE work overlap: the first half's upload runs while the
   second half's details are read, and the second half's upload while the first half is confirmed (each
   session is still confirmed only after its own upload was answered).
4. After a run that confirmed anything, the device-sync time moves to now (the next re-timing base).

A session is confirmed to the device only after the server answered ``stored`` or ``duplicate`` for it, or when it
is too short to keep (< 3 s of work, as the app), or when the server *rejected* it for its content: a rejection is
final for that payload (resending the same bytes gives the same answer), so it is kept in the outbox with the
reason, reported, and confirmed, rather than occupying the device's small RAM forever (and, at the front of the
listing, hiding newer sessions from every later sync). The outbox then holds the only copy, so it is forced to disk
(a full checkpoint) before any such confirmation. ``Outbox.requeue_rejected`` (``dtx sync --retry-rejected``)
sends such sessions again after a fix. Whole-call failures (network, server, auth) confirm nothing and stop the run;
the next run resumes. Every step is idempotent, so a run stopped anywhere — link lost, network down, process
killed — is finished by the next one, with nothing lost and nothing doubled.

The listing is the window onto the device: it shows only unconfirmed sessions, as many as one frame carries (at
most ~15 at MTU 517, 10 on the emulator as the app requests), and moves only when sessions are confirmed. A round
can therefore never hold more than one listing, and the server's answer for it is on the critical path.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from dualtetrax.ble.client import DualTetraXClient, SessionList
from dualtetrax.ble.errors import CommandRejectedError, MtuTooSmallError, ProtocolError, UnsupportedDeviceError
from dualtetrax.ble.protocol.enums import MessageType, ResponseStatus, SessionFilter
from dualtetrax.ble.protocol.messages import (
    ConfirmSyncRequest,
    GetSessionDetailRequest,
    GetSessionsRequest,
    GetSessionsResponse,
    Message,
    Response,
    SessionDetailResponse,
)
from dualtetrax.ble.protocol.sessions import SessionRecord
from dualtetrax.cloud.client import DtxCloud
from dualtetrax.cloud.errors import CloudError, ValidationError
from dualtetrax.sync.outbox import CONFIRMABLE, Outbox, Outcome
from dualtetrax.sync.pipeline import DEFAULT_WINDOW, exchange

logger = logging.getLogger(__name__)

UPLOAD_BATCH = 100
#: A round of at least this many new sessions is split in two halves whose uploads overlap BLE work.
OVERLAP_MIN = 4
#: Times a request the device answered BUSY is sent again (alone) before the sync stops.
BUSY_RETRIES = 3
#: GET_SESSIONS max_count: ask for as many as the device will put in one frame.
LIST_MAX = 255


@dataclass
class SyncReport:
    """What a sync did. Counts are sessions."""

    serial: str
    device_id: str | None = None
    registered: bool = False
    pulled: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(session id, the server's reason)."""
    confirmed: int = 0
    resumed: int = 0
    """Sessions an earlier, interrupted run left in the outbox and this one finished."""
    rounds: int = 0
    largest_listing: int = 0
    device_remaining: int = 0
    """Unconfirmed sessions the device still listed at the end (0 after a complete sync)."""
    elapsed_s: float = 0.0
    phase: str = "starting"

    @property
    def uploaded(self) -> int:
        return self.stored + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial, "device_id": self.device_id, "registered": self.registered,
            "pulled": self.pulled, "stored": self.stored, "duplicates": self.duplicates, "skipped": self.skipped,
            "rejected": [{"id": key, "reason": reason} for key, reason in self.rejected],
            "confirmed": self.confirmed, "resumed": self.resumed, "rounds": self.rounds,
            "largest_listing": self.largest_listing, "device_remaining": self.device_remaining,
            "elapsed_s": round(self.elapsed_s, 3),
        }


Progress = Callable[[SyncReport], None]


class SyncEngine:
    """One sync of one connected device. :func:`sync_device` is the usual entry point."""

    def __init__(self, ble: DualTetraXClient, cloud: DtxCloud, outbox: Outbox, *, device_id: str | None = None,
                 window: int = DEFAULT_WINDOW, progress: Progress | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.ble = ble
        self.cloud = cloud
        self.outbox = outbox
        self.device_id = device_id
        self.window = window
        self.progress = progress
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.report = SyncReport(serial="")
        self._started = time.perf_counter()

    def _tick(self, phase: str) -> None:
        self.report.phase = phase
        self.report.elapsed_s = time.perf_counter() - self._started
        if self.progress is not None:
            self.progress(self.report)

    async def run(self) -> SyncReport:
        await self.ble.sync_time(self.clock_ms())
        serial = await self._identify()
        self._tick("resuming")
        listing = await self._finish_leftovers(serial)
        seen_listed: dict[str, int] = {}
        while True:
            if not listing.sessions:
                if listing.total_count > 0:
                    raise MtuTooSmallError(
                        f"The device holds {listing.total_count} unsynced session(s) but listed none: at MTU "
                        f"{self.ble.mtu} a GET_SESSIONS answer cannot carry a 32-byte summary.")
                break
            self.report.rounds += 1
            self.report.largest_listing = max(self.report.largest_listing, len(listing.sessions))
            keys = [str(summary.session_id) for summary in listing.sessions]
            for key in keys:  # a device that keeps listing what it confirmed would loop forever
                seen_listed[key] = seen_listed.get(key, 0) + 1
                if seen_listed[key] > 3:
                    raise ProtocolError(f"The device keeps listing session {key} as unsynced after confirming it.")
            known = self.outbox.states(keys)
            fresh = [summary.session_id for summary in listing.sessions if str(summary.session_id) not in known]
            await self._pull_and_upload(serial, fresh)
            # Sessions the outbox already counts as confirmed but the device still lists (an answer lost with
            # the link, a device restored from a backup) are confirmed again: that is all they need.
            again = [key for key, state in known.items() if state == "confirmed"]
            listing = await self._confirm(serial, extra=again)
            self._tick("syncing")
        self.report.device_remaining = listing.total_count
        if self.report.confirmed:
            self.outbox.finish_device_sync(serial, self.clock_ms())
        self._tick("done")
        return self.report

    async def _identify(self) -> str:
        info = await self.ble.read_device_info()
        serial = info.serial_number
        if not serial:
            if self.device_id is None:
                raise UnsupportedDeviceError(
                    "The device reports no serial number, so it cannot be matched to a cloud device.",
                    hint="Pass the cloud device id explicitly (dtx sync --device-id).")
            serial = f"address:{info.address}"
        self.report.serial = serial
        if self.device_id is not None and info.serial_number:
            named = await self.cloud.device(self.device_id)
            if named.serial_number != serial:  # never file one device's sessions under another
                raise ValidationError(f"device_id: {self.device_id} is {named.serial_number} in the cloud, but the "
                                      f"connected device is {serial}", field="device_id")
        if self.device_id is None:
            device = await self.cloud.device_by_serial(serial)
            if device is None or not device.is_active:
                device = await self.cloud.register_device(serial, firmware_version=info.firmware_revision,
                                                          ble_address=info.address)
                self.report.registered = True
            self.device_id = str(device.id)
        self.report.device_id = self.device_id
        if self.outbox.device(serial).device_id != self.device_id:
            self.outbox.set_device_id(serial, self.device_id)
        return serial

    async def _finish_leftovers(self, serial: str) -> SessionList:
        """Upload and confirm what an interrupted run left; the device's first listing."""
        counts = self.outbox.counts(serial)
        self.report.resumed = counts["pulled"] + counts["uploaded"] + counts["skipped"] + counts["rejected"]
        # Other devices' sessions waiting for the server need no device: upload them too (they are confirmed when
        # their device next syncs); their report counts are not this device's.
        for other, device_id in self.outbox.devices_with_pending_uploads():
            if other == serial:
                continue
            try:
                await self._upload(other, device_id=device_id, report=SyncReport(serial=other))
            except CloudError as error:  # never let another device's backlog block this one
                logger.warning("sessions of %s stay in the outbox: %s", other, error)
        await self._upload(serial)
        return await self._confirm(serial)

    async def _pull(self, serial: str, session_ids: list[uuid.UUID]) -> None:
        if not session_ids:
            return
        answers = await self._exchange([GetSessionDetailRequest(s) for s in session_ids])
        records: list[SessionRecord] = []
        for answer in answers:
            assert isinstance(answer, SessionDetailResponse)
            if answer.ok and answer.record is not None:
                records.append(answer.record)
            elif answer.status is not ResponseStatus.NOT_FOUND:  # NOT_FOUND: gone since the listing
                raise ProtocolError(f"The device refused GET_SESSION_DETAIL: {answer.status.description}.")
        added = self.outbox.add_pulled(serial, records, now_ms=self.clock_ms())
        self.report.pulled += added

    async def _pull_and_upload(self, serial: str, fresh: list[uuid.UUID]) -> None:
        """Details of ``fresh`` into the outbox, then uploaded; with enough of them, in two halves whose cloud
        calls overlap the BLE exchanges of the other half (the server's answer time leaves the critical path).
        Leaves the second half uploaded and unconfirmed, for the round's final confirmation."""
        if len(fresh) < OVERLAP_MIN:
            await self._pull(serial, fresh)
            await self._upload(serial)
            return
        half = (len(fresh) + 1) // 2
        first, second = fresh[:half], fresh[half:]
        await self._pull(serial, first)
        await self._overlapped(self._upload(serial, ids=[str(s) for s in first]), self._pull(serial, second))
        await self._overlapped(self._upload(serial, ids=[str(s) for s in second]),
                               self._confirm(serial, only=[str(s) for s in first]))
        await self._upload(serial)  # anything else pulled and not yet sent (normally nothing)

    @staticmethod
    async def _overlapped(upload: Coroutine[Any, Any, None], ble_work: Coroutine[Any, Any, object]) -> None:
        """Run a cloud upload and a BLE exchange side by side, each to its end, then raise the first failure
        (the upload's first). Neither is cancelled when the other fails: an exchange cut short would leave an
        answer in flight, and each finished step is recorded in the outbox, so the next run does less."""
        results = await asyncio.gather(upload, ble_work, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _upload(self, serial: str, *, device_id: str | None = None, report: SyncReport | None = None,
                      ids: Sequence[str] | None = None) -> None:
        """Upload the device's ``pulled`` sessions (only ``ids``, if given) in calls of at most UPLOAD_BATCH."""
        device_id = device_id or self.device_id
        report = report or self.report
        assert device_id is not None
        while True:
            pending = self.outbox.entries(serial, states=["pulled"], ids=ids, limit=UPLOAD_BATCH)
            if not pending:
                return
            ids = [entry.session_id for entry in pending]
            try:
                result = await self.cloud.upload_sessions(device_id, [entry.payload for entry in pending])
            except CloudError as error:
                self.outbox.record_failure(ids, f"{type(error).__name__}: {error}")
                raise
            outcomes: list[tuple[str, Outcome, str | None]] = []
            answered: set[str] = set()
            for item in result.results:
                key = ids[item.index] if 0 <= item.index < len(ids) else None
                if key is None or item.id != key:  # the only guard on "confirm only what the server has"
                    raise CloudError(f"upload_sessions answered for {item.id!r} at index {item.index}, which is "
                                     f"{key!r} in the request; nothing is marked")
                answered.add(key)
                outcomes.append((key, item.status, item.reason))
                if item.status == "stored":
                    report.stored += 1
                elif item.status == "duplicate":
                    report.duplicates += 1
                else:
                    report.rejected.append((key, item.reason or "rejected"))
            if answered != set(ids):  # never treat a session the server did not answer for as accepted
                missing = sorted(set(ids) - answered)
                self.outbox.mark_uploaded(outcomes)
                raise CloudError(f"upload_sessions answered for {len(answered)} of {len(ids)} sessions "
                                 f"(first missing: {missing[0]})")
            self.outbox.mark_uploaded(outcomes)

    async def _exchange(self, requests: Sequence[Message]) -> list[Response]:
        answers = await exchange(self.ble, requests, window=self.window)
        if any(answer.status is ResponseStatus.BUSY for answer in answers):
            answers = await self._retry_busy(requests, answers)
        return answers

    async def _retry_busy(self, requests: Sequence[Message], answers: list[Response]) -> list[Response]:
        """A device that answers BUSY to requests written back to back gets them again, one at a time."""
        answers = list(answers)
        for attempt in range(1, BUSY_RETRIES + 1):
            busy = [i for i, answer in enumerate(answers) if answer.status is ResponseStatus.BUSY]
            if not busy:
                break
            await asyncio.sleep(0.05 * attempt)
            again = await exchange(self.ble, [requests[i] for i in busy], window=1)
            for i, answer in zip(busy, again, strict=True):
                answers[i] = answer
        return answers

    async def _confirm(self, serial: str, *, extra: Sequence[str] = (), only: Sequence[str] | None = None
                       ) -> SessionList:
        """CONFIRM_SYNC every confirmable session (of ``only``, if given), then GET_SESSIONS: the listing
        already reflects the confirmations. With ``only``, no listing is asked for (an empty list is returned)."""
        entries = self.outbox.keys(serial, states=CONFIRMABLE)
        if only is not None:
            wanted = set(only)
            entries = [(key, state) for key, state in entries if key in wanted]
        if any(state != "uploaded" for _key, state in entries):
            self.outbox.make_durable()  # the outbox keeps the only copy of these once the device forgets them
        keys = [key for key, _state in entries] + list(extra)
        skipped = sum(1 for _key, state in entries if state == "skipped")
        requests: list[Message] = [ConfirmSyncRequest(uuid.UUID(key)) for key in keys]
        if only is None:
            requests.append(GetSessionsRequest(LIST_MAX, SessionFilter.UNSYNCED))
        answers = await exchange(self.ble, requests, window=self.window) if requests else []
        listing = answers.pop() if only is None else GetSessionsResponse(ResponseStatus.SUCCESS, 0, ())
        if any(answer.status is ResponseStatus.BUSY for answer in answers):
            answers = await self._retry_busy(requests[:len(keys)], answers)
            if only is None:
                listing = await self.ble.request(requests[-1])  # after the retried confirmations
        assert isinstance(listing, GetSessionsResponse)
        if not listing.ok:
            raise CommandRejectedError(MessageType.GET_SESSIONS, listing.status)
        done: list[str] = []
        for key, answer in zip(keys, answers, strict=True):
            # NOT_FOUND: the device no longer holds it (rebooted, deleted): nothing left to confirm.
            if answer.ok or answer.status is ResponseStatus.NOT_FOUND:
                done.append(key)
            else:
                raise ProtocolError(f"The device refused CONFIRM_SYNC for {key}: {answer.status.description}.")
        if done:
            self.outbox.mark_confirmed(done)
        self.report.confirmed += len(done) - len(extra)
        self.report.skipped += skipped
        return SessionList(listing.total_count, listing.sessions)


async def sync_device(ble: DualTetraXClient, cloud: DtxCloud, outbox: Outbox, *, device_id: str | None = None,
                      window: int = DEFAULT_WINDOW, progress: Progress | None = None,
                      clock_ms: Callable[[], int] | None = None) -> SyncReport:
    """Move every stored session of the connected device ``ble`` to the cloud through ``outbox``; see the module
    documentation for the order and the guarantees. ``device_id``: the cloud device (default: found, or
    registered, by the device's serial number). ``window``: BLE requests in flight (1, the default: one at a time, as
    the device requires)."""
    return await SyncEngine(ble, cloud, outbox, device_id=device_id, window=window, progress=progress,
                            clock_ms=clock_ms).run()
