"""A campaign's tracking and bounce figures, human and machine apart (read only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from mailer.tracking.models import Bounce, BounceKind, EventKind, TrackingEvent


def campaign_figures(session: Session, campaign_id: int) -> dict[str, Any]:
    """Bounces and complaints, event totals, why machine events were judged so, and clicks
    per link (human clicks only). Each is one grouped query on an indexed campaign column."""
    by_kind = dict(
        session.execute(
            select(Bounce.kind, func.count())
            .where(Bounce.campaign_id == campaign_id)
            .group_by(Bounce.kind)
        ).all()
    )
    mine = TrackingEvent.campaign_id == campaign_id
    totals = {
        (kind, machine): n
        for kind, machine, n in session.execute(
            select(TrackingEvent.kind, TrackingEvent.machine, func.count())
            .where(mine)
            .group_by(TrackingEvent.kind, TrackingEvent.machine)
        ).all()
    }
    reasons = dict(
        session.execute(
            select(TrackingEvent.reason, func.count())
            .where(mine, TrackingEvent.machine.is_(True))
            .group_by(TrackingEvent.reason)
            .order_by(TrackingEvent.reason)
        ).all()
    )
    human_click = mine & (TrackingEvent.kind == EventKind.CLICK) & TrackingEvent.machine.is_(False)
    links = session.execute(
        select(
            TrackingEvent.link_index,
            func.min(TrackingEvent.url),
            func.count(),
            func.count(distinct(TrackingEvent.delivery_id)),
        )
        .where(human_click)
        .group_by(TrackingEvent.link_index)
        .order_by(TrackingEvent.link_index)
    ).all()
    return {
        "bounces": {
            "hard": by_kind.get(BounceKind.HARD, 0),
            "soft": by_kind.get(BounceKind.SOFT, 0),
        },
        "complaints": by_kind.get(BounceKind.COMPLAINT, 0),
        "events": {
            "human_opens": totals.get((EventKind.OPEN, False), 0),
            "machine_opens": totals.get((EventKind.OPEN, True), 0),
            "human_clicks": totals.get((EventKind.CLICK, False), 0),
            "machine_clicks": totals.get((EventKind.CLICK, True), 0),
        },
        "machine_reasons": reasons,
        "links": [
            {"index": index, "url": url, "clicks": n, "unique_clicks": unique}
            for index, url, n, unique in links
        ],
    }
