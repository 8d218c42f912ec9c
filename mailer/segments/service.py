"""Saved segments and what the API asks of them: count, sample, create, update, get.

Who commits: `create` and `update` commit; `count`, `sample`, `get` and `list_segments` only
read. Rerunning a read is safe; rerunning `create` with the same name fails with a clear
error (names are unique), rerunning `update` with the same values changes nothing but
`updated_at`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.database import utcnow
from mailer.segments import compiler
from mailer.segments.models import Segment
from mailer.segments.rules import RulesError, validate_tree
from mailer.subscribers.models import Form, Subscriber, Topic

MAX_NAME = 200
_MAX_ID = 2**31 - 1


class SegmentError(ValueError):
    """Bad input; `errors` maps fields (`name`, `rules.all.0.topic`) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class SegmentNotFound(LookupError):
    pass


def count(session: Session, rules: dict[str, Any], now: datetime | None = None) -> int:
    """How many subscribers the rules select at `now` (default: the current time). Reads only.

    Raises `RulesError` for invalid rules."""
    where = compiler.where(rules, now or utcnow())
    return session.scalar(select(func.count()).select_from(Subscriber).where(where)) or 0


def sample(
    session: Session, rules: dict[str, Any], limit: int = 20, now: datetime | None = None
) -> list[Subscriber]:
    """Up to `limit` members, newest first (a stable order, so a preview does not flicker).
    Reads only. Raises `RulesError` for invalid rules."""
    where = compiler.where(rules, now or utcnow())
    query = select(Subscriber).where(where).order_by(Subscriber.id.desc()).limit(limit)
    return list(session.scalars(query))


def get(session: Session, segment_id: int) -> Segment:
    """The segment, or `SegmentNotFound`. Reads only."""
    segment = session.get(Segment, segment_id) if 0 < segment_id <= _MAX_ID else None
    if segment is None:
        raise SegmentNotFound(segment_id)
    return segment


def list_segments(session: Session) -> list[Segment]:
    """Every segment, by name. Reads only."""
    return list(session.scalars(select(Segment).order_by(Segment.name, Segment.id)))


def create(session: Session, name: str, rules: dict[str, Any]) -> Segment:
    """Save a segment. Commits. `SegmentError` for a taken name, invalid rules or rules that
    name a topic, form or campaign that does not exist."""
    name = _name(name)
    tree = _checked(session, rules)
    _name_free(session, name, None)
    segment = Segment(name=name, rules=tree)
    session.add(segment)
    _commit(session)
    return segment


def update(
    session: Session,
    segment_id: int,
    *,
    name: str | None = None,
    rules: dict[str, Any] | None = None,
) -> Segment:
    """Rename and/or replace the rules (None: keep). Commits. `SegmentNotFound`, or
    `SegmentError` as for `create`. Campaigns already sending keep the recipients they have."""
    segment = get(session, segment_id)
    if name is not None:
        name = _name(name)
        _name_free(session, name, segment.id)
        segment.name = name
    if rules is not None:
        segment.rules = _checked(session, rules)
    segment.updated_at = utcnow()
    _commit(session)
    return segment


def check_references(session: Session, tree: dict[str, Any]) -> dict[str, list[str]]:
    """Errors for topics, forms and campaigns the (normalised) tree names but that do not exist:
    a typo would otherwise make an empty segment without a word. Reads only."""
    wanted: dict[str, dict[Any, list[str]]] = {"topic": {}, "form": {}, "campaign": {}}
    for path, kind, ref in _references(tree, "rules"):
        wanted[kind].setdefault(ref, []).append(path)
    found: set[tuple[str, Any]] = set()
    for kind, model in (("topic", Topic), ("form", Form)):
        ids = [r for r in wanted[kind] if isinstance(r, int)]
        slugs = [r for r in wanted[kind] if isinstance(r, str)]
        if ids:
            found |= {(kind, i) for i in session.scalars(select(model.id).where(model.id.in_(ids)))}
        if slugs:
            query = select(model.slug).where(model.slug.in_(slugs))
            found |= {(kind, s) for s in session.scalars(query)}
    if wanted["campaign"]:
        query = select(Campaign.id).where(Campaign.id.in_(list(wanted["campaign"])))
        found |= {("campaign", i) for i in session.scalars(query)}
    errors: dict[str, list[str]] = {}
    for kind, refs in wanted.items():
        for ref, paths in refs.items():
            if (kind, ref) not in found:
                what = "id" if isinstance(ref, int) else "slug"
                for path in paths:
                    errors.setdefault(path, []).append(f"No {kind} with {what} {ref!r}.")
    return errors


def _references(node: dict[str, Any], path: str) -> Iterator[tuple[str, str, Any]]:
    for group in ("all", "any"):
        if group in node:
            for i, child in enumerate(node[group]):
                yield from _references(child, f"{path}.{group}.{i}")
            return
    if "not" in node:
        yield from _references(node["not"], f"{path}.not")
        return
    field = node["field"]
    if field == "topic":
        yield f"{path}.topic", "topic", node["topic"]
    elif field in ("form", "campaign") and "value" in node:
        if isinstance(node["value"], list):
            for i, ref in enumerate(node["value"]):
                yield f"{path}.value.{i}", field, ref
        else:
            yield f"{path}.value", field, node["value"]


def _checked(session: Session, rules: dict[str, Any]) -> dict[str, Any]:
    try:
        tree = validate_tree(rules)
    except RulesError as exc:
        raise SegmentError(exc.errors) from exc
    errors = check_references(session, tree)
    if errors:
        raise SegmentError(errors)
    return tree


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise SegmentError({"name": [f"Give a name of 1 to {MAX_NAME} characters."]})
    return name


def _name_free(session: Session, name: str, own_id: int | None) -> None:
    taken = session.scalar(select(Segment.id).where(Segment.name == name))
    if taken is not None and taken != own_id:
        raise SegmentError({"name": ["A segment with this name exists."]})


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent create took the name first
        session.rollback()
        raise SegmentError({"name": ["A segment with this name exists."]}) from exc
