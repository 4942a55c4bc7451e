"""Typed rows and responses of the cloud API (pydantic). Unknown keys are ignored so that a newer server does
not break an older SDK; missing required keys fail loudly."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Profile(_Row):
    id: uuid.UUID
    email: str | None = None
    display_name: str | None = None
    gender: str | None = None
    birth_date: date | None = None
    timezone: str
    locale: str | None = None
    role: Literal["user", "admin"]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class Device(_Row):
    id: uuid.UUID
    owner_id: uuid.UUID
    serial_number: str
    model: str
    hardware_revision: str | None = None
    firmware_version: str | None = None
    ble_address: str | None = None
    nickname: str | None = None
    is_beta: bool = False
    tags: list[str] = Field(default_factory=list)
    is_active: bool
    total_sessions: int = 0
    last_synced_at: datetime | None = None
    last_session_at: datetime | None = None
    registered_at: datetime
    updated_at: datetime


class DeviceTransfer(_Row):
    id: uuid.UUID
    device_id: uuid.UUID
    from_user_id: uuid.UUID
    to_email: str
    """The address the offer was made to; any account with that confirmed email may answer it."""
    to_user_id: uuid.UUID | None = None
    """The account that accepted or rejected it (none while pending)."""
    status: Literal["pending", "accepted", "rejected", "cancelled"]
    message: str | None = None
    created_at: datetime
    responded_at: datetime | None = None


class UploadItemResult(_Row):
    index: int
    """Position in the list passed to :meth:`DtxCloud.upload_sessions` (across its batches)."""
    id: str | None = None
    status: Literal["stored", "duplicate", "rejected"]
    reason: str | None = None


class UploadResult(_Row):
    stored: int
    duplicates: int
    rejected: int
    results: list[UploadItemResult]

    @property
    def accepted_ids(self) -> set[str]:
        """Sessions the server now holds for this device (stored now or before)."""
        return {r.id for r in self.results if r.id and r.status in ("stored", "duplicate")}


class StatsTotals(_Row):
    """Sums of ``daily_statistics`` counters over a period (or the whole range)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    sessions: int = 0
    working_seconds: int = 0
    pause_seconds: int = 0
    active_days: int = 0
    ushot_sessions: int = 0
    ushot_seconds: int = 0
    eshot_sessions: int = 0
    eshot_seconds: int = 0
    led_sessions: int = 0
    led_seconds: int = 0
    battery_warnings: int = 0
    temperature_warnings: int = 0
    warning_sessions: int = 0
    estimated_sessions: int = 0
    mode_breakdown: dict[str, dict[str, int]] = Field(default_factory=dict)
    level_breakdown: dict[str, dict[str, int]] = Field(default_factory=dict)


class StatsPeriod(StatsTotals):
    period: str
    """The day (``2026-03-09``), the ISO week's Monday, or the month (``2026-03``)."""
    start_date: date
    end_date: date


class StatsSummary(StatsTotals):
    avg_sessions_per_active_day: float = 0
    avg_working_seconds_per_active_day: float = 0


class StatsRange(_Row):
    range: dict[str, Any]
    periods: list[StatsPeriod]
    summary: StatsSummary


class Streaks(_Row):
    today: date
    current: int
    current_start: date | None = None
    longest: int
    longest_start: date | None = None
    longest_end: date | None = None
    last_active_date: date | None = None
    active_days: int


class GoalProgress(_Row):
    goal_id: uuid.UUID
    goal_type: Literal["weekly", "monthly"]
    target_minutes: int
    start_date: date
    end_date: date | None = None
    period_start: date
    period_end: date
    achieved_seconds: int
    achieved_minutes: float
    percent: float
    achieved: bool


class Announcement(_Row):
    id: uuid.UUID
    title: str
    body: str
    kind: str
    locale: str | None = None
    is_published: bool
    published_at: datetime | None = None
    created_at: datetime


class Notification(_Row):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    read_at: datetime | None = None
    created_at: datetime


ReportStatus = Literal["queued", "rendering", "ready", "failed"]


class ReportRequest(_Row):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    period_start: date
    period_end: date
    locale: str
    status: ReportStatus
    bucket: str
    object_path: str | None = None
    error: str | None = None
    attempts: int = 0
    requested_at: datetime
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("ready", "failed")


class UpdateOffer(_Row):
    """``ota_check_update``'s answer."""

    update_available: bool
    current_version_code: int | None = None
    rollout_id: uuid.UUID | None = None
    firmware_id: uuid.UUID | None = None
    version: str | None = None
    version_code: int | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    changelog: str | None = None
    required: bool = False
    is_downgrade: bool = False
    storage_path: str | None = None
    bucket: str | None = None
    below_minimum: dict[str, Any] | None = None


UpdatePhase = Literal["idle", "offered", "downloading", "transferring", "installing", "succeeded", "failed",
                      "timed_out", "cancelled"]


class FirmwareStatus(_Row):
    """A device's row of ``device_firmware_status``."""

    device_id: uuid.UUID
    current_version: str | None = None
    current_version_code: int | None = None
    last_check_at: datetime | None = None
    rollout_id: uuid.UUID | None = None
    target_version_id: uuid.UUID | None = None
    stage: int | None = None
    phase: UpdatePhase
    phase_at: datetime
    attempts: int = 0
    error_code: int | None = None
    error_message: str | None = None
    verified_at: datetime | None = None


class RolloutStage(_Row):
    percent: int
    soak_minutes: int = 0


class Rollout(_Row):
    """A row of ``firmware_rollouts`` (admins only)."""

    id: uuid.UUID
    firmware_version_id: uuid.UUID
    name: str
    strategy: Literal["all_at_once", "staged", "manual", "beta"]
    stages: list[RolloutStage]
    current_stage: int
    stage_started_at: datetime | None = None
    model: str
    channel: str
    device_ids: list[uuid.UUID] = Field(default_factory=list)
    beta_tags: list[str] = Field(default_factory=list)
    target_hardware_revisions: list[str] = Field(default_factory=list)
    min_current_version_code: int | None = None
    success_threshold: float
    failure_threshold: float
    min_sample_size: int
    in_progress_timeout_minutes: int
    is_downgrade: bool
    status: Literal["draft", "active", "paused", "completed", "aborted"]
    status_reason: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RolloutOverview(_Row):
    model_config = ConfigDict(extra="allow", frozen=True)
    id: uuid.UUID
    name: str
    status: str
    strategy: str
    version: str
    current_stage: int
    percent: int | None = None
    status_reason: str | None = None
    phases: dict[str, int] = Field(default_factory=dict)
    stages: dict[str, dict[str, int]] = Field(default_factory=dict)


class FleetOverview(_Row):
    """``admin_fleet_overview``: devices per firmware version; per rollout its state and devices per phase."""

    rollouts: list[RolloutOverview]
    devices_by_version: dict[str, int]
