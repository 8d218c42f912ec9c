"""The settings store: the admin's values over the environment's, with their history.

`effective(session, base)` is what senders, workers and pages use: the environment's
`Settings` with the stored values laid over them (`dataclasses.replace`), and the generated
DKIM key when the environment configures none. It is cached per process for
`CACHE_SECONDS`, so a worker sees a change at its first job after that (a change saved in this
process is seen at once).

`save` and `reset` validate, write the value and an append-only history row together, and
commit. Rerunning one is harmless: the same value again adds one more history row.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.database import utcnow
from mailer.settings import sealing
from mailer.settings.models import SettingChange, SettingValue, StoredDkimKey
from mailer.settings.schema import KEYS, Key

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
_cache: dict[int, tuple[Settings, float, Settings]] = {}
_lock = threading.Lock()


class SettingsError(ValueError):
    """Input refused; `messages` is marshmallow's `{field: [message]}` (possibly nested)."""

    def __init__(self, messages: Mapping[str, Any]) -> None:
        super().__init__("invalid settings")
        self.messages = dict(messages)


def key(name: str) -> Key:
    """The key named `name`; raises KeyError for one that does not exist."""
    return KEYS[name]


# -- reading ------------------------------------------------------------------------------


def _open(spec: Key, raw: Any, secret_key: str) -> Any:
    """A stored value, unsealed and validated again; raises ValueError if unusable."""
    if spec.secret:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("sealed"), str):
            raise ValueError("a secret stored unsealed")
        raw = json.loads(sealing.open_(secret_key, raw["sealed"]))
    if not isinstance(raw, Mapping):
        raise ValueError("not an object")
    return spec.load(raw)


def stored(session: Session, secret_key: str) -> dict[str, Any]:
    """Every stored value that is still usable, by key name. Read-only.

    A value that no longer opens (the secret key changed) or validates is left out and logged
    by name only (never its value): the environment's value applies instead."""
    values = {}
    for name, raw in session.execute(select(SettingValue.key, SettingValue.value)).all():
        spec = KEYS.get(name)
        if spec is None:
            continue
        try:
            values[name] = _open(spec, raw, secret_key)
        except (ValueError, ValidationError):
            log.warning("stored setting %r is unusable; the environment's value applies", name)
    return values


def unusable(session: Session, secret_key: str) -> list[str]:
    """Names of stored settings that cannot be used (for the admin page to say so)."""
    names = set(session.scalars(select(SettingValue.key))) & set(KEYS)
    return sorted(names - set(stored(session, secret_key)))


def _dkim(session: Session, base: Settings) -> dict[str, Any]:
    """The newest generated DKIM key, unless the environment configures one."""
    if base.dkim_domain and base.dkim_selector and base.dkim_key_path:
        return {}
    row = session.scalar(select(StoredDkimKey).order_by(StoredDkimKey.id.desc()).limit(1))
    if row is None:
        return {}
    try:
        pem = sealing.open_(base.secret_key, row.private_key_sealed)
    except sealing.SealError:
        log.warning("DKIM key %s cannot be opened (the secret key changed?)", row.id)
        return {}
    return {
        "dkim_domain": row.domain,
        "dkim_selector": row.selector,
        "dkim_key_path": "",
        "dkim_private_key": pem,
    }


def compute(session: Session, base: Settings) -> Settings:
    """`base` with every usable stored value applied, uncached. Read-only."""
    changes: dict[str, Any] = {}
    for name, value in stored(session, base.secret_key).items():
        changes.update(KEYS[name].apply(value))
    changes.update(_dkim(session, base))
    return replace(base, **changes)


def effective(session: Session, base: Settings) -> Settings:
    """The settings in force: `base` (the environment's) with the admin's values laid over.

    Cached per `base` for `CACHE_SECONDS`; read-only (the caller's transaction stays open)."""
    now = time.monotonic()
    entry = _cache.get(id(base))
    if entry is not None and entry[0] is base and entry[1] > now:
        return entry[2]
    result = compute(session, base)
    with _lock:
        if len(_cache) > 32:  # many apps in one process (tests): keep it small
            _cache.clear()
        _cache[id(base)] = (base, now + CACHE_SECONDS, result)
    return result


def invalidate() -> None:
    """Forget cached settings in this process (after a change)."""
    with _lock:
        _cache.clear()


def environment(base: Settings, name: str) -> Any:
    """The environment's value of a key, in the key's JSON form."""
    return KEYS[name].read(base)


# -- writing ------------------------------------------------------------------------------


def _raw(session: Session, name: str) -> SettingValue | None:
    return session.get(SettingValue, name)


def _history(
    session: Session, spec: Key, old: Any, new: Any, user_id: int | None, user_email: str
) -> None:
    session.add(
        SettingChange(
            key=spec.name,
            old_value=spec.shown(old),
            new_value=spec.shown(new),
            user_id=user_id,
            user_email=user_email[:320],
        )
    )


def save(
    session: Session,
    name: str,
    data: Mapping[str, Any],
    base: Settings,
    *,
    user_id: int | None,
    user_email: str = "",
) -> Any:
    """Validate `data` for key `name` and store it; returns the value. Commits.

    Raises `SettingsError` (nothing written) for invalid input, KeyError for an unknown key.
    The history row keeps the value in force before (stored or the environment's)."""
    try:
        return _save(session, name, data, base, user_id, user_email)
    except IntegrityError:
        # Another admin stored this key first (both saw no row): theirs is now the old value.
        session.rollback()
        return _save(session, name, data, base, user_id, user_email)


def _save(
    session: Session,
    name: str,
    data: Mapping[str, Any],
    base: Settings,
    user_id: int | None,
    user_email: str,
) -> Any:
    spec = KEYS[name]
    row = _raw(session, name)
    old = stored(session, base.secret_key).get(name) if row is not None else None
    if old is None:
        old = spec.read(base)
    if spec.prepare is not None:
        data = spec.prepare(data, old)
    try:
        value = spec.load(data)
    except ValidationError as exc:
        raise SettingsError(exc.messages) from None
    raw: Any = value
    if spec.secret:
        raw = {"sealed": sealing.seal(base.secret_key, json.dumps(value).encode())}
    if row is None:
        row = SettingValue(key=name)
        session.add(row)
    row.value = raw
    row.updated_at = utcnow()
    row.updated_by_id = user_id
    _history(session, spec, old, value, user_id, user_email)
    session.commit()
    invalidate()
    return value


def reset(
    session: Session, name: str, base: Settings, *, user_id: int | None, user_email: str = ""
) -> bool:
    """Go back to the environment's value. Commits; False (nothing written) if none stored."""
    spec = KEYS[name]
    row = _raw(session, name)
    if row is None:
        return False
    old = stored(session, base.secret_key).get(name)
    session.delete(row)
    _history(session, spec, old, None, user_id, user_email)
    session.commit()
    invalidate()
    return True


def record(
    session: Session, name: str, old: Any, new: Any, *, user_id: int | None, user_email: str
) -> None:
    """A history row for a change made elsewhere (a DKIM key). Not committed: it rides with
    the caller's change."""
    session.add(
        SettingChange(
            key=name, old_value=old, new_value=new, user_id=user_id, user_email=user_email[:320]
        )
    )


def history(
    session: Session, page: int, per_page: int, name: str | None = None
) -> tuple[list[SettingChange], int]:
    """One page of the history, newest first, and the total. Read-only."""
    query = select(SettingChange)
    count = select(func.count()).select_from(SettingChange)
    if name:
        query = query.where(SettingChange.key == name)
        count = count.where(SettingChange.key == name)
    rows = session.scalars(
        query.order_by(SettingChange.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), session.scalar(count) or 0
