"""Sign-up forms as the request path needs them, cached in each process.

Accepting a sign-up must not touch the database (`mailer.subscribers.intake`), yet it needs the
form: its topics, its consent text versions, whether it asks for a name, its locale and the
origins it accepts posts from. `FormCache` keeps a `CachedForm` per slug in the process, and
trusts it only while a generation counter in Redis is unchanged: every committed change to a
form, its topics or its consent text increments that counter (one INCR after the commit), so
the next request in every process reloads. A short time-to-live is the safety net for a bump
that could not reach Redis.

The bump is not left to each writer to remember: mapper events note any insert, update or
delete of a `Form`, `FormVersion` or `Topic` (changing a form's topics marks the form) on the
session, and the session's commit then increments the counter. `install(app)` (done by the
public blueprint) gives the app its cache and the bump its Redis connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, object_session

from mailer.subscribers.models import Form, FormVersion, Topic

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

GENERATION = "mailer:forms:generation"
TTL_SECONDS = 30.0
EXTENSION = "mailer.form_cache"
_CHANGED = "mailer.forms_changed"


@dataclass(frozen=True)
class CachedForm:
    """What accepting a sign-up needs to know about its form; no ORM object, no session."""

    id: int
    slug: str
    name: str
    locale: str | None
    ask_name: bool
    allowed_origins: tuple[str, ...]
    topics: tuple[str, ...]  # slugs, in the form's order
    version_ids: frozenset[int]
    current_version_id: int


def snapshot(form: Form) -> CachedForm:
    return CachedForm(
        id=form.id,
        slug=form.slug,
        name=form.name,
        locale=form.locale,
        ask_name=form.ask_name,
        allowed_origins=tuple(form.allowed_origins or ()),
        topics=tuple(t.slug for t in form.topics),
        version_ids=frozenset(v.id for v in form.versions),
        current_version_id=form.current_version.id,
    )


class FormCache:
    """Per process: slug -> (form or None, generation, loaded at). Thread-safe enough: a race
    only loads the same form twice."""

    def __init__(self, connection: redis.Redis, ttl: float = TTL_SECONDS) -> None:
        self.connection = connection
        self.ttl = ttl
        self._forms: dict[str, tuple[CachedForm, bytes, float]] = {}

    def get(
        self, slug: str, load: Callable[[], Form | None], fresh: bool = False
    ) -> CachedForm | None:
        """The form with this slug (None: there is none, or it has no consent text yet).

        One Redis GET when the cache is current; otherwise (or with `fresh`) `load()` reads
        the database. Redis unreachable: no caching, straight to the database. The database
        unreachable while a reload is due: the form as last seen, so sign-ups are still
        accepted meanwhile."""
        try:
            generation = self.connection.get(GENERATION) or b"0"
        except RedisError:
            return _snapshot_or_none(load())
        cached = self._forms.get(slug)
        now = time.monotonic()
        current = cached is not None and cached[1] == generation and now - cached[2] < self.ttl
        if current and not fresh:
            return cached[0]
        try:
            form = _snapshot_or_none(load())
        except (OperationalError, DisconnectionError):
            if cached is None:
                raise
            log.warning("form %s served from the cache: the database is unavailable", slug)
            return cached[0]
        if form is None:
            self._forms.pop(slug, None)
        else:
            self._forms[slug] = (form, generation, now)
        return form

    def peek(self, slug: str) -> tuple[CachedForm, bytes] | None:
        """The cached form and the generation it was loaded at, if loaded within the TTL; no
        Redis. The caller must check the generation itself (`admission` does, in its script)."""
        cached = self._forms.get(slug)
        if cached is None or time.monotonic() - cached[2] >= self.ttl:
            return None
        return cached[0], cached[1]


def _snapshot_or_none(form: Form | None) -> CachedForm | None:
    return snapshot(form) if form is not None and form.versions else None


def bump(connection: redis.Redis) -> None:
    """Tell every process its cached forms are out of date. Best effort: the TTL covers a miss."""
    try:
        connection.incr(GENERATION)
    except RedisError as exc:
        log.warning("form cache generation not bumped (%s)", type(exc).__name__)


def cache(app: Flask) -> FormCache:
    return app.extensions[EXTENSION]


_connection: redis.Redis | None = None


def install(app: Flask) -> None:
    """Give `app` its cache, and the commit hook its Redis connection (the app's)."""
    global _connection
    app.extensions[EXTENSION] = FormCache(app.extensions["mailer.redis"])
    _connection = app.extensions["mailer.redis"]


def _note_change(_mapper: Any, _connection_: Any, target: Any) -> None:
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and _connection is not None:
        bump(_connection)


def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


for _model in (Form, FormVersion, Topic):
    for _name in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _name, _note_change)
event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)
