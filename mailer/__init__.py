"""mailer: permission-based email marketing with a consent ledger you can prove."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer import config as config_module
from mailer import tasks, tokens
from mailer.config import ROOT, Settings
from mailer.delivery.sender import Sender
from mailer.extensions import babel, csrf, db, jobs, limiter, login_manager, select_locale
from mailer.subscribers.links import Links


@dataclass(frozen=True)
class Delivery:
    sender: Sender
    links: Links


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or config_module.load()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder="static",
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        MAILER=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        # HttpOnly and SameSite always; Secure in production whatever MAILER_SECURE_COOKIES says.
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies or settings.production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.secure_cookies or settings.production,
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        RATELIMIT_STORAGE_URI=settings.limiter_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down must not take sign-ups down with it: count in memory meanwhile.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "mailer" / "translations"),
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https") else "http",
    )
    if settings.proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.proxy_count,
            x_proto=settings.proxy_count,
            x_host=settings.proxy_count,
        )
    db.init_app(app, settings)
    jobs.init_app(app, settings)
    tasks.configure(app.extensions["mailer.queue"], app.extensions["mailer.campaign_queue"])
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    limiter.init_app(app)
    app.extensions["mailer.tokens"] = tokens.from_settings(settings)
    app.extensions["mailer.delivery"] = Delivery(
        sender=Sender(settings),
        links=Links(app.extensions["mailer.tokens"], settings.base_url),
    )

    from mailer.accounts import views as account_views
    from mailer.admin import access as admin_access
    from mailer.admin import navigation as admin_navigation
    from mailer.admin.blueprints import ALL as admin_blueprints
    from mailer.campaigns import views as campaign_views
    from mailer.public import views as public_views
    from mailer.tracking import views as tracking_views
    from mailer.web import register

    register(app)
    from mailer import api

    api.init_app(app)
    app.register_blueprint(public_views.bp)
    app.register_blueprint(account_views.bp)
    for blueprint in admin_blueprints:
        app.register_blueprint(blueprint)
    app.jinja_env.globals["can"] = admin_access.can
    app.jinja_env.globals["roles"] = admin_access
    app.jinja_env.globals["admin_menu"] = admin_navigation.menu
    app.jinja_env.globals["has_endpoint"] = admin_navigation.has_endpoint
    app.register_blueprint(campaign_views.bp)
    app.register_blueprint(tracking_views.bp)
    if settings.smtp_catcher:
        from mailer.devmail import views as outbox_views

        app.register_blueprint(outbox_views.bp)
    return app
