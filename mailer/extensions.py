"""Extension objects, created unbound and bound to an app in `create_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from flask import Flask, g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker

from mailer.database import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from mailer.config import Settings

QUEUE_NAME = "mailer"
# Campaign jobs run long; on their own queue, workers take system mail (confirmations) first.
CAMPAIGN_QUEUE_NAME = "mailer-campaigns"


class Database:
    """One engine per app; one session per app context (request or worker job)."""

    def init_app(self, app: Flask, settings: Settings) -> None:
        engine = make_engine(settings.database_url)
        app.extensions["mailer.db"] = make_sessionmaker(engine, {"ledger_key": settings.ledger_key})
        app.teardown_appcontext(self._close)

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        from flask import current_app

        return current_app.extensions["mailer.db"]

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            g.db_session = self.sessionmaker()
        return g.db_session

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


class Jobs:
    """The RQ queue; holds the Redis connection every part of the app shares."""

    def init_app(self, app: Flask, settings: Settings) -> None:
        connection = redis.Redis.from_url(settings.redis_url)
        app.extensions["mailer.redis"] = connection
        app.extensions["mailer.queue"] = Queue(QUEUE_NAME, connection=connection)
        app.extensions["mailer.campaign_queue"] = Queue(CAMPAIGN_QUEUE_NAME, connection=connection)

    @property
    def redis(self) -> redis.Redis:
        from flask import current_app

        return current_app.extensions["mailer.redis"]

    @property
    def queue(self) -> Queue:
        from flask import current_app

        return current_app.extensions["mailer.queue"]

    @property
    def queues(self) -> list[Queue]:
        """Every queue, in the order workers serve them: system mail before campaigns."""
        from flask import current_app

        return [
            current_app.extensions["mailer.queue"],
            current_app.extensions["mailer.campaign_queue"],
        ]


def select_locale() -> str | None:
    from flask import current_app

    forced = g.get("locale")
    if forced:
        return forced
    locales = current_app.config["MAILER"].locales
    return request.accept_languages.best_match(locales) if request else None


db = Database()
jobs = Jobs()
csrf = CSRFProtect()
babel = Babel()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, strategy="moving-window")
