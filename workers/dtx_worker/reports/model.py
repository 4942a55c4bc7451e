"""The typed input of a usage report: everything the renderer draws, nothing it has to look up.

The worker builds a `ReportData` from the database (`daily_statistics`, `devices`, `goals`, the profile);
`aggregate.summarize_days` does the arithmetic from `daily_statistics` rows. The renderer trusts nothing it
can check: totals must equal the sum of the days and of every breakdown, days must lie inside the period.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Locale = Literal["en", "ko", "ja", "zh", "es", "pt", "th", "vi"]
LOCALES: tuple[Locale, ...] = ("en", "ko", "ja", "zh", "es", "pt", "th", "vi")

NonNegative = Annotated[int, Field(ge=0)]


class PeriodKind(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class ShotType(IntEnum):
    """`usage_sessions.shot_type` as stored (0-based)."""

    USHOT = 0
    ESHOT = 1
    LED = 2


# `usage_sessions.device_mode` → (shot type, the name printed on the device). Names are the product's own and
# are not translated.
MODES: dict[int, tuple[ShotType, str]] = {
    1: (ShotType.USHOT, "Glow"),
    2: (ShotType.USHOT, "Toneup"),
    3: (ShotType.USHOT, "Renew"),
    4: (ShotType.USHOT, "Volume"),
    17: (ShotType.ESHOT, "Clean"),
    18: (ShotType.ESHOT, "Firm"),
    19: (ShotType.ESHOT, "Line"),
    20: (ShotType.ESHOT, "Lift"),
    33: (ShotType.LED, "LED"),
}
LEVELS: tuple[int, ...] = (1, 2, 3)


def whole_minutes(seconds: int) -> int:
    """Seconds shown as minutes everywhere in a report: rounded half up."""
    return (seconds + 30) // 60


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Usage(_Frozen):
    """A count of sessions and their working seconds."""

    sessions: NonNegative = 0
    seconds: NonNegative = 0

    @property
    def minutes(self) -> int:
        return whole_minutes(self.seconds)

    def __add__(self, other: Usage) -> Usage:
        return Usage(sessions=self.sessions + other.sessions, seconds=self.seconds + other.seconds)


class DayUsage(_Frozen):
    """One local day of the period, all devices together (the sum of `daily_statistics` rows of that date)."""

    day: date
    sessions: NonNegative = 0
    working_seconds: NonNegative = 0
    pause_seconds: NonNegative = 0
    ushot: Usage = Usage()
    eshot: Usage = Usage()
    led: Usage = Usage()
    warning_sessions: NonNegative = 0

    @model_validator(mode="after")
    def _shot_types_add_up(self) -> Self:
        parts = (self.ushot, self.eshot, self.led)
        if sum(p.sessions for p in parts) != self.sessions:
            raise ValueError(f"{self.day}: U-Shot + E-Shot + LED sessions must equal sessions ({self.sessions})")
        if sum(p.seconds for p in parts) != self.working_seconds:
            raise ValueError(f"{self.day}: U-Shot + E-Shot + LED seconds must equal working_seconds")
        return self

    def by_shot_type(self, shot: ShotType) -> Usage:
        return (self.ushot, self.eshot, self.led)[shot]


class Period(_Frozen):
    """The report's local dates, both ends included."""

    kind: PeriodKind
    start: date
    end: date

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.end < self.start:
            raise ValueError("period: end is before start")
        if self.days > 31:
            raise ValueError("period: at most 31 days")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    @property
    def is_calendar_month(self) -> bool:
        nxt = self.end + timedelta(days=1)
        return self.start.day == 1 and nxt.day == 1 and self.start.month == self.end.month


class Totals(_Frozen):
    """The key counts of a period."""

    sessions: NonNegative = 0
    working_seconds: NonNegative = 0
    active_days: NonNegative = 0

    @property
    def minutes(self) -> int:
        return whole_minutes(self.working_seconds)


class PreviousPeriod(_Frozen):
    """The period before the report's, for comparison."""

    start: date
    end: date
    totals: Totals


class Breakdown(_Frozen):
    """Period totals by shot type, by device mode (`MODES` keys) and by level (1–3)."""

    shot_types: dict[ShotType, Usage] = {}
    modes: dict[int, Usage] = {}
    levels: dict[int, Usage] = {}

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, v: dict[int, Usage]) -> dict[int, Usage]:
        unknown = sorted(set(v) - set(MODES))
        if unknown:
            raise ValueError(f"unknown device modes {unknown}; known: {sorted(MODES)}")
        return v

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, v: dict[int, Usage]) -> dict[int, Usage]:
        unknown = sorted(set(v) - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown levels {unknown}; levels are 1–3")
        return v

    def shot_type(self, shot: ShotType) -> Usage:
        return self.shot_types.get(shot, Usage())


class Goal(_Frozen):
    goal_type: PeriodKind
    target_minutes: Annotated[int, Field(ge=1)]
    achieved_minutes: NonNegative

    @property
    def ratio(self) -> float:
        return self.achieved_minutes / self.target_minutes


class Streaks(_Frozen):
    """Consecutive local days with at least one session, as of the period's end."""

    current_days: NonNegative = 0
    longest_days: NonNegative = 0


class Device(_Frozen):
    name: str  # the nickname, or whatever the app shows when there is none
    serial: str
    model: str
    firmware_version: str | None = None


class ReportData(_Frozen):
    user_display_name: str
    locale: Locale
    timezone: str
    period: Period
    generated_at: datetime
    devices: list[Device] = []
    days: list[DayUsage] = []  # days without sessions may be left out
    totals: Totals
    breakdown: Breakdown
    previous: PreviousPeriod | None = None
    goals: list[Goal] = []
    streaks: Streaks = Streaks()

    @field_validator("timezone")
    @classmethod
    def _iana(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {v!r} is not an IANA time zone name") from None
        return v

    @field_validator("generated_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("generated_at: needs a time zone offset")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[date] = set()
        for d in self.days:
            if not self.period.start <= d.day <= self.period.end:
                raise ValueError(f"days: {d.day} is outside the period {self.period.start}–{self.period.end}")
            if d.day in seen:
                raise ValueError(f"days: {d.day} appears twice")
            seen.add(d.day)
        t = self.totals
        checks = {
            "sessions": (t.sessions, sum(d.sessions for d in self.days)),
            "working_seconds": (t.working_seconds, sum(d.working_seconds for d in self.days)),
            "active_days": (t.active_days, sum(1 for d in self.days if d.sessions)),
        }
        b = self.breakdown
        for name, parts in (("shot_types", b.shot_types), ("modes", b.modes), ("levels", b.levels)):
            if parts:
                checks[f"breakdown.{name} sessions"] = (t.sessions, sum(u.sessions for u in parts.values()))
                checks[f"breakdown.{name} seconds"] = (t.working_seconds, sum(u.seconds for u in parts.values()))
        for what, (declared, computed) in checks.items():
            if declared != computed:
                raise ValueError(f"totals: {what} is {declared} but the days/breakdown add up to {computed}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day_map(self) -> dict[date, DayUsage]:
        by_day = {d.day: d for d in self.days}
        return {day: by_day.get(day) or DayUsage(day=day) for day in self.period.dates()}

    def main_goal(self) -> Goal | None:
        """The goal shown among the key figures: the one of the report's own kind, else the first."""
        for g in self.goals:
            if g.goal_type == self.period.kind:
                return g
        return self.goals[0] if self.goals else None
