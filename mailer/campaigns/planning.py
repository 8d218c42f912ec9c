"""When a campaign should go out, chosen before it is sent: now, or a local time in a zone.

A draft keeps the chosen time in `send_at` (None: send now) and nothing happens until the
marketer sends or schedules it after the review: the scheduler and the sweep look at
scheduled campaigns only, so a draft's time is just remembered. A campaign that is already
scheduled is moved at once through `lifecycle.schedule` (content checked again, a new start
job for the new time; an old job for the old time finds nothing to do).

`plan` commits. Rerunning with the same time changes nothing a recipient would notice.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from mailer.campaigns import lifecycle
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.database import utcnow

MAX_AHEAD = timedelta(days=366 * 2)
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends


class PlanError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def zones() -> list[str]:
    """Every IANA zone name, UTC first."""
    return ["UTC", *sorted(z for z in _known() if z != "UTC")]


def known_zone(name: str) -> bool:
    return name in _known()


def zone(name: str) -> ZoneInfo:
    if name not in _known():
        raise PlanError("timezone", "Choose a time zone from the list.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PlanError("timezone", "Choose a time zone from the list.") from exc


def parse_local(value: str, zone_name: str) -> datetime:
    """`2026-11-22T19:33` in `zone_name` as an aware UTC time. A wall time that does not
    exist in that zone (skipped when clocks go forward) is refused rather than guessed."""
    tz = zone(zone_name)
    try:
        naive = datetime.strptime((value or "").strip(), LOCAL_FORMAT)
    except ValueError as exc:
        raise PlanError("send_at", "Enter a date and time, like 2026-11-22 09:30.") from exc
    local = naive.replace(tzinfo=tz)
    back = local.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != naive:
        raise PlanError(
            "send_at", f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_name} (clocks skip it)."
        )
    return local.astimezone(UTC)


def local_value(moment: datetime, zone_name: str) -> str:
    """`moment` as a datetime-local input shows it in `zone_name`."""
    return moment.astimezone(zone(zone_name)).strftime(LOCAL_FORMAT)


def plan(
    session: Session, campaign: Campaign, send_at: datetime | None, now: datetime | None = None
) -> Campaign:
    """Remember (draft) or move (scheduled) when `campaign` goes out. Commits. PlanError for
    a time that passed or lies too far ahead, or a campaign that already started;
    content problems of a scheduled campaign raise as `lifecycle.schedule` raises them."""
    now = now or utcnow()
    if send_at is not None:
        if send_at <= now:
            raise PlanError("send_at", "That time has passed: choose a later one, or send now.")
        if send_at > now + MAX_AHEAD:
            raise PlanError("send_at", "Choose a time within the next two years.")
    if campaign.status is CampaignStatus.DRAFT:
        campaign.send_at = send_at
        session.commit()
        return campaign
    if campaign.status is CampaignStatus.SCHEDULED:
        if send_at is None or send_at == campaign.send_at:
            return campaign  # sending now instead is the review's "Send now"
        return lifecycle.schedule(session, campaign.id, send_at)
    raise PlanError("status", f"A {campaign.status.value} campaign cannot be rescheduled.")
