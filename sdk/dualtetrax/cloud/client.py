"""``DtxCloud``: the high-level cloud client. One object per signed-in user, over any
:class:`~dualtetrax.cloud.backend.CloudBackend` (a Supabase project, or the local stack).

Every method returns typed models (:mod:`dualtetrax.cloud.models`) and raises typed errors
(:mod:`dualtetrax.cloud.errors`). The server enforces every rule; the client only shapes requests and results.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from dualtetrax.cloud.backend import AuthSession, CloudBackend, Filter, Order, eq
from dualtetrax.cloud.errors import (
    AuthError,
    CloudError,
    CloudTimeoutError,
    NetworkError,
    NotFoundError,
    ValidationError,
    error_from_storage,
)
from dualtetrax.cloud.models import (
    Announcement,
    Device,
    DeviceTransfer,
    FirmwareStatus,
    FleetOverview,
    GoalProgress,
    Notification,
    Profile,
    ReportRequest,
    Rollout,
    StatsRange,
    Streaks,
    UpdateOffer,
    UploadItemResult,
    UploadResult,
)

#: The upload RPC's batch limit.
UPLOAD_BATCH = 100
#: Storage buckets for the user's own files, with the types they take (and the extension each type gets).
PROFILE_IMAGES, PROFILE_IMAGE_MAX_BYTES = "profile-images", 2 * 1024 * 1024
PROFILE_IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
DEVICE_LOGS, DEVICE_LOG_MAX_BYTES = "device-logs", 10 * 1024 * 1024
DEVICE_LOG_TYPES = {"text/plain": "log", "application/gzip": "gz", "application/octet-stream": "bin"}
_LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,110}")
_PROFILE_FIELDS = frozenset({"display_name", "gender", "birth_date", "timezone", "locale"})


class DtxCloud:
    """The cloud API for one user.

    >>> cloud = DtxCloud(backend)                        # doctest: +SKIP
    >>> await cloud.sign_in("mina@example.test", "…")    # doctest: +SKIP
    >>> [d.serial_number for d in await cloud.devices()] # doctest: +SKIP
    """

    def __init__(self, backend: CloudBackend, *, persist_session: Callable[[AuthSession | None], None] | None = None
                 ) -> None:
        """``persist_session``: called on :meth:`close` with the session in use when it changed since the last
        call (tokens are refreshed during long runs, and Supabase refresh tokens are single-use)."""
        self.backend = backend
        self._persist = persist_session
        self._persisted: AuthSession | None = backend.session

    async def __aenter__(self) -> DtxCloud:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def mark_persisted(self, session: AuthSession | None) -> None:
        """``session`` is what the persistence target holds now."""
        self._persisted = session

    async def close(self) -> None:
        try:
            if self._persist is not None and self.backend.session != self._persisted:
                self._persisted = self.backend.session
                self._persist(self._persisted)
        finally:
            await self.backend.close()

    # -- auth

    @property
    def session(self) -> AuthSession | None:
        return self.backend.session

    @property
    def user_id(self) -> uuid.UUID:
        """The signed-in user's id; :class:`AuthError` when nobody is signed in."""
        session = self.backend.session
        if session is None:
            raise AuthError("not signed in", hint="Sign in first (`dtx login`).")
        return uuid.UUID(session.user_id)

    async def sign_up(self, email: str, password: str, *, display_name: str | None = None,
                      timezone: str | None = None, locale: str | None = None) -> AuthSession:
        """Create an account; the profile is created from these details by the server."""
        metadata = {k: v for k, v in (("display_name", display_name), ("timezone", timezone), ("locale", locale))
                    if v is not None}
        return await self.backend.sign_up(email, password, metadata=metadata)

    async def sign_in(self, email: str, password: str) -> AuthSession:
        return await self.backend.sign_in(email, password)

    async def restore(self, session: AuthSession) -> AuthSession:
        """Continue a cached session (refreshed when it is about to expire)."""
        return await self.backend.restore(session)

    async def refresh(self) -> AuthSession:
        return await self.backend.refresh()

    async def sign_out(self) -> None:
        await self.backend.sign_out()

    # -- profile

    async def profile(self) -> Profile:
        rows = await self.backend.select("profiles", filters=[eq("id", self.user_id)])
        if not rows:
            raise NotFoundError("profile not found")
        return Profile.model_validate(rows[0])

    async def update_profile(self, **changes: Any) -> Profile:
        """Change your own ``display_name``, ``gender``, ``birth_date``, ``timezone`` or ``locale``."""
        unknown = sorted(set(changes) - _PROFILE_FIELDS)
        if unknown:
            raise ValidationError(f"{unknown[0]}: not a field you can change "
                                  f"(allowed: {', '.join(sorted(_PROFILE_FIELDS))})", field=unknown[0])
        rows = await self.backend.update("profiles", _jsonable(changes), filters=[eq("id", self.user_id)])
        if not rows:
            raise NotFoundError("profile not found")
        return Profile.model_validate(rows[0])

    # -- devices

    async def register_device(self, serial_number: str, *, model: str = "DualTetraX",
                              hardware_revision: str | None = None, firmware_version: str | None = None,
                              ble_address: str | None = None, nickname: str | None = None) -> Device:
        """Register a device to yourself; registering your own device again updates and reactivates it."""
        args = {"serial_number": serial_number, "model": model, "hardware_revision": hardware_revision,
                "firmware_version": firmware_version, "ble_address": ble_address, "nickname": nickname}
        return Device.model_validate(await self.backend.rpc("register_device", args))

    async def devices(self, *, include_inactive: bool = False) -> list[Device]:
        filters: list[Filter] = [eq("owner_id", self.user_id)]
        if not include_inactive:
            filters.append(eq("is_active", True))
        rows = await self.backend.select("devices", filters=filters, order=[Order("registered_at")])
        return [Device.model_validate(r) for r in rows]

    async def device(self, device_id: uuid.UUID | str) -> Device:
        rows = await self.backend.select("devices", filters=[eq("id", str(device_id))])
        if not rows:
            raise NotFoundError("device not found", field="device_id")
        return Device.model_validate(rows[0])

    async def device_by_serial(self, serial_number: str) -> Device | None:
        rows = await self.backend.select("devices", filters=[eq("serial_number", serial_number),
                                                             eq("owner_id", self.user_id)])
        return Device.model_validate(rows[0]) if rows else None

    async def _update_device(self, device_id: uuid.UUID | str, values: Mapping[str, Any]) -> Device:
        rows = await self.backend.update("devices", values, filters=[eq("id", str(device_id))])
        if not rows:
            raise NotFoundError("device not found", field="device_id")
        return Device.model_validate(rows[0])

    async def rename_device(self, device_id: uuid.UUID | str, nickname: str | None) -> Device:
        return await self._update_device(device_id, {"nickname": nickname})

    async def deactivate_device(self, device_id: uuid.UUID | str) -> Device:
        return await self._update_device(device_id, {"is_active": False})

    async def set_device_firmware_version(self, device_id: uuid.UUID | str, version: str) -> Device:
        return await self._update_device(device_id, {"firmware_version": version})

    # -- transfers

    async def offer_transfer(self, device_id: uuid.UUID | str, to_email: str, message: str | None = None
                             ) -> DeviceTransfer:
        row = await self.backend.rpc("offer_device_transfer",
                                     {"device_id": str(device_id), "to_email": to_email, "message": message})
        return DeviceTransfer.model_validate(row)

    async def accept_transfer(self, transfer_id: uuid.UUID | str) -> DeviceTransfer:
        row = await self.backend.rpc("respond_device_transfer", {"transfer_id": str(transfer_id), "accept": True})
        return DeviceTransfer.model_validate(row)

    async def reject_transfer(self, transfer_id: uuid.UUID | str) -> DeviceTransfer:
        row = await self.backend.rpc("respond_device_transfer", {"transfer_id": str(transfer_id), "accept": False})
        return DeviceTransfer.model_validate(row)

    async def cancel_transfer(self, transfer_id: uuid.UUID | str) -> DeviceTransfer:
        row = await self.backend.rpc("cancel_device_transfer", {"transfer_id": str(transfer_id)})
        return DeviceTransfer.model_validate(row)

    async def transfers(self, *, status: str | None = "pending") -> list[DeviceTransfer]:
        """Transfers you offered or were offered (RLS shows both sides)."""
        filters = [eq("status", status)] if status else []
        rows = await self.backend.select("device_transfers", filters=filters, order=[Order("created_at", True)])
        return [DeviceTransfer.model_validate(r) for r in rows]

    # -- sessions

    async def upload_sessions(self, device_id: uuid.UUID | str, sessions: Sequence[Mapping[str, Any]]
                              ) -> UploadResult:
        """Upload any number of sessions in batches of ≤ 100 through ``upload_sessions``.

        Idempotent: sessions the server already holds come back as ``duplicate``. Per-item results keep the
        index into ``sessions``. A batch that fails as a whole (network, auth) raises; batches before it stay
        stored, and re-uploading everything is safe.
        """
        results: list[UploadItemResult] = []
        stored = duplicates = rejected = 0
        for start in range(0, len(sessions), UPLOAD_BATCH):
            batch = [_jsonable(s) for s in sessions[start:start + UPLOAD_BATCH]]
            answer = await self.backend.rpc("upload_sessions", {"device_id": str(device_id), "sessions": batch})
            if not isinstance(answer, dict):
                raise CloudError(f"upload_sessions answered {type(answer).__name__}, not an object")
            stored += int(answer.get("stored", 0))
            duplicates += int(answer.get("duplicates", 0))
            rejected += int(answer.get("rejected", 0))
            for item in answer.get("results", []):
                results.append(UploadItemResult.model_validate({**item, "index": start + int(item["index"])}))
        return UploadResult(stored=stored, duplicates=duplicates, rejected=rejected, results=results)

    async def sessions(self, *, device_id: uuid.UUID | str | None = None, since: str | None = None,
                       limit: int = 1000) -> list[dict[str, Any]]:
        """Your stored sessions, newest first (rows of ``usage_sessions``)."""
        filters: list[Filter] = [eq("user_id", self.user_id)]
        if device_id is not None:
            filters.append(eq("device_id", str(device_id)))
        if since is not None:
            filters.append(Filter("start_time", "gte", since))
        return await self.backend.select("usage_sessions", filters=filters, order=[Order("start_time", True)],
                                         limit=limit)

    # -- statistics

    async def stats_range(self, start: date, end: date, *, group_by: Literal["day", "week", "month"] = "day",
                          device_id: uuid.UUID | str | None = None) -> StatsRange:
        answer = await self.backend.rpc("stats_range", {"start_date": start.isoformat(), "end_date": end.isoformat(),
                                                        "group_by": group_by,
                                                        "device_id": str(device_id) if device_id else None})
        return StatsRange.model_validate(answer)

    async def streaks(self) -> Streaks:
        return Streaks.model_validate(await self.backend.rpc("stats_streaks", {}))

    async def goal_progress(self) -> list[GoalProgress]:
        return [GoalProgress.model_validate(g) for g in await self.backend.rpc("goal_progress", {}) or []]

    # -- announcements and notifications

    async def announcements(self, *, limit: int = 50) -> list[Announcement]:
        rows = await self.backend.select("announcements", filters=[eq("is_published", True)],
                                         order=[Order("published_at", True)], limit=limit)
        return [Announcement.model_validate(r) for r in rows]

    async def notifications(self, *, unread_only: bool = False, limit: int = 100) -> list[Notification]:
        filters: list[Filter] = [eq("user_id", self.user_id)]
        if unread_only:
            filters.append(Filter("read_at", "is", None))
        rows = await self.backend.select("notifications", filters=filters, order=[Order("created_at", True)],
                                         limit=limit)
        return [Notification.model_validate(r) for r in rows]

    async def mark_notification_read(self, notification_id: uuid.UUID | str) -> Notification:
        rows = await self.backend.update("notifications", {"read_at": datetime.now(UTC).isoformat()},
                                         filters=[eq("id", str(notification_id))])
        if not rows:
            raise NotFoundError("notification not found", field="notification_id")
        return Notification.model_validate(rows[0])

    # -- reports

    async def request_report(self, kind: Literal["weekly", "monthly", "sessions_csv", "data_export"], *,
                             period_start: date | None = None, period_end: date | None = None,
                             locale: str | None = None) -> ReportRequest:
        """Ask for a report (idempotent per kind, period and locale); the worker renders it."""
        row = await self.backend.rpc("request_report", {
            "kind": kind, "period_start": period_start.isoformat() if period_start else None,
            "locale": locale, "period_end": period_end.isoformat() if period_end else None})
        return ReportRequest.model_validate(row)

    async def report(self, request_id: uuid.UUID | str) -> ReportRequest:
        rows = await self.backend.select("report_requests", filters=[eq("id", str(request_id))])
        if not rows:
            raise NotFoundError("report request not found", field="request_id")
        return ReportRequest.model_validate(rows[0])

    async def wait_for_report(self, request_id: uuid.UUID | str, *, timeout_s: float = 120.0,
                              poll_s: float = 2.0) -> ReportRequest:
        """Wait until the report is ``ready`` or ``failed``: woken by Realtime where the backend has it, and
        re-reading the row at least every ``poll_s`` either way. :class:`TimeoutError` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            request = await self.report(request_id)
            if request.finished:
                return request
            left = deadline - time.monotonic()
            if left <= 0:
                raise CloudTimeoutError(f"report {request_id} is still {request.status} after {timeout_s:.0f} s",
                                        hint="The worker renders reports; is `dtx-worker run` running?")
            await self.backend.wait_for_change("report_requests", [eq("id", str(request_id))], min(poll_s, left))

    async def report_url(self, request: ReportRequest, *, expires_in: int = 600) -> str:
        if request.status != "ready" or not request.object_path:
            raise ValidationError(f"request_id: the report is {request.status}, not ready", field="request_id")
        return await self.backend.signed_url(request.bucket, request.object_path, expires_in)

    async def download_report(self, request: ReportRequest, destination: str | Path) -> Path:
        """Download a ready report through a signed URL to ``destination`` (a file, or a folder to put it in)."""
        import httpx

        url = await self.report_url(request)
        target = Path(destination)
        if await asyncio.to_thread(target.is_dir):
            target = target / Path(request.object_path or "report").name
        partial = target.with_name(target.name + ".part")
        try:
            async with httpx.AsyncClient(timeout=60) as http, http.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                    try:
                        body = response.json() if response.content else None
                    except ValueError:
                        body = None
                    raise error_from_storage(response.status_code, body, "the report download")
                handle = await asyncio.to_thread(partial.open, "wb")
                try:
                    async for chunk in response.aiter_bytes():
                        await asyncio.to_thread(handle.write, chunk)
                finally:
                    await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial.replace, target)
        except httpx.TransportError as error:
            raise NetworkError(f"the report download failed: {error}") from error
        finally:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
        return target

    # -- profile photo and device logs (private buckets; everything under the user's own folder)

    async def upload_profile_image(self, data: bytes, *, content_type: str = "image/jpeg") -> str:
        """Store the user's profile photo (JPEG, PNG or WebP, at most 2 MB) as ``<user id>/avatar.<ext>`` in
        ``profile-images``, replacing the previous one in one step; returns the object path."""
        ext = _file_type(data, content_type, PROFILE_IMAGE_TYPES, PROFILE_IMAGE_MAX_BYTES)
        path = f"{self.user_id}/avatar.{ext}"
        await self.backend.upload_object(PROFILE_IMAGES, path, data, content_type, upsert=True)
        for other in sorted(set(PROFILE_IMAGE_TYPES.values()) - {ext}):  # a photo of another type is the old one
            await self.backend.delete_object(PROFILE_IMAGES, f"{self.user_id}/avatar.{other}")
        return path

    async def profile_image_url(self, *, expires_in: int = 600) -> str | None:
        """A signed download URL of the user's profile photo, or None when they have none."""
        for ext in PROFILE_IMAGE_TYPES.values():
            with contextlib.suppress(NotFoundError):
                return await self.backend.signed_url(PROFILE_IMAGES, f"{self.user_id}/avatar.{ext}", expires_in)
        return None

    async def delete_profile_image(self) -> None:
        for ext in PROFILE_IMAGE_TYPES.values():
            await self.backend.delete_object(PROFILE_IMAGES, f"{self.user_id}/avatar.{ext}")

    async def upload_device_log(self, device_id: uuid.UUID | str, data: bytes, *, content_type: str = "text/plain",
                                name: str | None = None) -> str:
        """Store a diagnostic log of one of the user's active devices (text, gzip or binary, at most 10 MB) as
        ``<user id>/<device id>/<name>.<ext>`` in ``device-logs``; returns the object path. Logs are never
        overwritten (:class:`ConflictError` for a name in use); ``name`` defaults to the UTC time to the
        microsecond."""
        ext = _file_type(data, content_type, DEVICE_LOG_TYPES, DEVICE_LOG_MAX_BYTES)
        stem = name if name is not None else datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if not _LOG_NAME.fullmatch(stem):
            raise ValidationError("name: letters, digits, '.', '_' and '-' only, starting with a letter or digit,"
                                  " at most 111 characters", field="name")
        try:
            device = uuid.UUID(str(device_id))
        except ValueError:
            raise ValidationError(f"device_id: {device_id!r} is not a UUID", field="device_id") from None
        path = f"{self.user_id}/{device}/{stem}.{ext}"
        await self.backend.upload_object(DEVICE_LOGS, path, data, content_type)
        return path

    async def device_log_url(self, path: str, *, expires_in: int = 600) -> str:
        """A signed download URL of a device log (the user's own, or any for an admin)."""
        return await self.backend.signed_url(DEVICE_LOGS, path, expires_in)

    # -- firmware updates

    async def check_update(self, device_id: uuid.UUID | str, current_version: str) -> UpdateOffer:
        """``ota_check_update``: is there an update for this device running ``current_version``?"""
        answer = await self.backend.rpc("ota_check_update", {"device_id": str(device_id),
                                                             "current_version": current_version})
        return UpdateOffer.model_validate(answer)

    async def report_update_status(self, device_id: uuid.UUID | str, rollout_id: uuid.UUID | str,
                                   phase: Literal["downloading", "transferring", "installing", "succeeded", "failed",
                                                  "cancelled"],
                                   *, error_code: int | None = None, error_message: str | None = None
                                   ) -> FirmwareStatus:
        """``ota_report_status``; repeating the current phase is a no-op on the server."""
        row = await self.backend.rpc("ota_report_status", {
            "device_id": str(device_id), "rollout_id": str(rollout_id), "phase": phase,
            "error_code": error_code, "error_message": error_message})
        return FirmwareStatus.model_validate(row)

    async def firmware_status(self, device_id: uuid.UUID | str) -> FirmwareStatus | None:
        rows = await self.backend.select("device_firmware_status", filters=[eq("device_id", str(device_id))])
        return FirmwareStatus.model_validate(rows[0]) if rows else None

    async def firmware_url(self, offer: UpdateOffer, *, expires_in: int = 900) -> str:
        """A signed URL for the offered binary (readable only while it is published)."""
        if not offer.update_available or not offer.storage_path:
            raise ValidationError("offer: no update is available", field="offer")
        return await self.backend.signed_url(offer.bucket or "firmware-binaries", offer.storage_path, expires_in)

    # -- admin (the caller must be an admin; the server checks)

    async def publish_firmware(self, image: bytes, *, version: str, publish: bool = False,
                               **options: Any) -> Any:
        """Validate, upload and register a firmware image as this (admin) user; see
        :func:`dualtetrax.admin.publish_firmware` for ``options`` and the all-or-nothing guarantee."""
        from dualtetrax.admin import publish_firmware
        from dualtetrax.cloud.admin import CloudAdminBackend

        return await publish_firmware(CloudAdminBackend(self.backend), image, version=version, publish=publish,
                                      **options)

    async def create_rollout(self, firmware_id: uuid.UUID | str, name: str, *, strategy: str = "staged",
                             stages: Sequence[Mapping[str, int]] | None = None, start: bool = False,
                             **options: Any) -> Rollout:
        """``admin_create_rollout`` (then ``admin_start_rollout`` with ``start``); ``options`` are its other
        arguments (``device_ids``, ``beta_tags``, thresholds, ``timeout_minutes``, ``is_downgrade`` …)."""
        args: dict[str, Any] = {"firmware_id": str(firmware_id), "name": name, "strategy": strategy, **options}
        if stages is not None:
            args["stages"] = [dict(s) for s in stages]
        rollout = Rollout.model_validate(await self.backend.rpc("admin_create_rollout", _jsonable(args)))
        if start:
            rollout = await self.rollout_action(rollout.id, "start")
        return rollout

    async def fleet_overview(self) -> FleetOverview:
        return FleetOverview.model_validate(await self.backend.rpc("admin_fleet_overview", {}))

    async def rollouts(self, *, limit: int = 50) -> list[Rollout]:
        rows = await self.backend.select("firmware_rollouts", order=[Order("created_at", True)], limit=limit)
        return [Rollout.model_validate(r) for r in rows]

    async def rollout_action(self, rollout_id: uuid.UUID | str,
                             action: Literal["start", "pause", "resume", "abort", "advance"],
                             reason: str | None = None) -> Rollout:
        """Move a rollout through its state machine; every transition is audited by the server."""
        answer = await self.backend.rpc(f"admin_{action}_rollout", {"rollout_id": str(rollout_id), "reason": reason})
        return Rollout.model_validate(answer)


#: Values passed through as they are, checked by exact type first (the ABC checks below cost far more, and the
#: upload of a sync hands over thousands of plain values per call).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(item) in _PLAIN_TYPES:
            out[key] = item
        elif isinstance(item, uuid.UUID):
            out[key] = str(item)
        elif isinstance(item, date):
            out[key] = item.isoformat()
        elif isinstance(item, Mapping):
            out[key] = _jsonable(item)
        elif isinstance(item, list | tuple):
            out[key] = [_jsonable(v) if type(v) is dict or isinstance(v, Mapping) else v for v in item]
        else:
            out[key] = item
    return out


def _file_type(data: bytes, content_type: str, types: Mapping[str, str], max_bytes: int) -> str:
    """The extension for ``content_type``, after the checks the bucket would make (so the error names the field)."""
    if content_type not in types:
        raise ValidationError(f"content_type: must be one of {', '.join(types)}", field="content_type")
    if not data:
        raise ValidationError("data: the file is empty", field="data")
    if len(data) > max_bytes:
        raise ValidationError(f"data: {len(data)} bytes; at most {max_bytes}", field="data")
    return types[content_type]
