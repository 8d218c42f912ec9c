"""Settings: the only module that reads the environment.

Everything has an embedded default so that `mailer run` works on a fresh machine. In
production (`MAILER_ENV=production`) the defaults that would be unsafe are refused instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(env: dict[str, str], instance: Path, production: bool) -> str:
    key = env.get("MAILER_SECRET_KEY", "")
    if key:
        return key
    if production:
        raise ConfigError("MAILER_SECRET_KEY is required when MAILER_ENV=production")
    # Dev: generate once and keep it, so signed links survive restarts.
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True)
class SenderIdentity:
    """A From (and optional Reply-To) that campaigns may send as."""

    name: str
    email: str
    reply_to: str = ""


@dataclass(frozen=True)
class Settings:
    env: str
    instance_path: Path
    secret_key: str
    database_url: str
    redis_url: str
    redis_embedded: bool
    smtp_url: str
    smtp_catcher: bool
    catcher_port: int
    base_url: str
    mail_from: str
    locales: tuple[str, ...] = ("en", "nb", "da")
    default_locale: str = "en"
    confirm_max_age: int = 7 * 24 * 3600
    preferences_max_age: int = 90 * 24 * 3600
    confirmation_window: int = 600
    min_fill_seconds: int = 2
    signup_rate_limit: str = "10/minute;100/hour"
    address_rate_limit: str = "5/hour"
    resend_rate_limit: str = "3/hour"
    login_rate_limit: str = "5/minute"
    max_body_bytes: int = 64 * 1024
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_path: str = ""
    node_binary: str = "node"
    base_url_explicit: bool = True  # False: the default, which `mailer run --port` replaces
    # HMAC key for personal data in the consent ledger's hash chain (see mailer.consent.chain).
    ledger_key: bytes = b""
    # Who answers for the data (consent receipts, access exports).
    controller: dict[str, str] | None = None
    # Record visitors' IPs truncated (IPv4 /24, IPv6 /48) instead of whole, as evidence.
    truncate_ip: bool = False
    # Reverse proxies in front of the app whose X-Forwarded-* headers we trust (IPs, scheme).
    proxy_count: int = 0
    secure_cookies: bool = False
    # Campaign sending: all workers together stay under these (0: no limit).
    send_rate_per_second: int = 0
    send_rate_per_hour: int = 0
    # Recipients one sender job claims at a time (one commit per claim).
    send_batch_size: int = 200
    # Sender jobs enqueued per campaign: how many workers may share one campaign.
    send_jobs: int = 4
    # Senders each of those jobs runs side by side in its worker (threads; one on SQLite).
    send_concurrency: int = 4
    # A claimed-but-unsent recipient returns to the pool after this long without its sender.
    claim_lease: int = 60
    # A recipient left "sending" this long had a sender die mid-SMTP: it becomes "unknown".
    # Must exceed the SMTP timeout.
    sending_lease: int = 180
    # Temporary SMTP failures per recipient before giving up (failed, not suppressed).
    send_max_attempts: int = 6
    # How often `mailer cron` looks for stalled or overdue campaigns.
    campaign_sweep_seconds: int = 30
    # Shared secret for POST /webhooks/bounces (empty: the endpoint answers 404).
    bounce_webhook_secret: str = ""
    # Optional mailto: for List-Unsubscribe next to the https URL (RFC 2369).
    unsubscribe_mailto: str = ""
    # Opens this soon after delivery are counted as machine opens (proxies, scanners).
    machine_open_seconds: int = 10
    # How long tracking links keep recording (the redirect itself keeps working).
    tracking_max_age: int = 400 * 24 * 3600
    # Retention (mailer.compliance.retention): never-confirmed sign-ups and raw tracking
    # events older than this many days are purged daily.
    retention_pending_days: int = 30
    retention_tracking_days: int = 395
    # Consent audit export files made from the admin pages are deleted this long after they
    # are written (mailer.compliance.export_jobs, hourly from `mailer cron`).
    export_ttl_hours: int = 24
    # Who campaigns may send as (default: MAILER_MAIL_FROM); the admin's list replaces it.
    sender_identities: tuple[SenderIdentity, ...] = ()
    # Open and click tracking switched on for new campaigns.
    track_opens_default: bool = True
    track_clicks_default: bool = True
    # A DKIM key (PEM) generated in the admin: never read from the environment, filled in by
    # `mailer.settings.store.effective` when MAILER_DKIM_* configure no key.
    dkim_private_key: bytes = field(default=b"", repr=False)
    # Login lockout: this many failed sign-ins for one address within the window lock that
    # address for `login_lockout_seconds` (0 attempts: off). The per-IP rate limit is separate.
    login_lockout_attempts: int = 10
    login_lockout_window: int = 900
    login_lockout_seconds: int = 900

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def server_name(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"

    @property
    def limiter_storage_uri(self) -> str:
        """Flask-Limiter (`limits`) spells Redis socket URLs with a `redis+` prefix."""
        if self.redis_url.startswith("unix://"):
            return "redis+unix://" + self.redis_url[len("unix://") :]
        return self.redis_url


def load(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    mode = env.get("MAILER_ENV", "development")
    if mode not in {"development", "production", "test"}:
        raise ConfigError("MAILER_ENV must be development, production or test")
    production = mode == "production"
    instance = Path(env.get("MAILER_INSTANCE_PATH", ROOT / "instance")).resolve()

    database_url = env.get("MAILER_DATABASE_URL", "")
    if not database_url:
        if production:
            raise ConfigError("MAILER_DATABASE_URL is required when MAILER_ENV=production")
        database_url = f"sqlite:///{instance / 'mailer.db'}"
    if database_url.startswith("postgres://") or database_url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship.
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

    redis_url = env.get("MAILER_REDIS_URL", "")
    redis_embedded = not redis_url
    if redis_embedded:
        if production:
            raise ConfigError("MAILER_REDIS_URL is required when MAILER_ENV=production")
        redis_url = f"unix://{instance / 'redis.sock'}"

    catcher_port = _int(env, "MAILER_CATCHER_PORT", 1025)
    smtp_url = env.get("MAILER_SMTP_URL", "")
    smtp_catcher = not smtp_url
    if smtp_catcher:
        if production:
            raise ConfigError("MAILER_SMTP_URL is required when MAILER_ENV=production")
        smtp_url = f"smtp://127.0.0.1:{catcher_port}"

    base_url = env.get("MAILER_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    if production and not base_url.startswith("https://"):
        raise ConfigError("MAILER_BASE_URL must be an https:// URL when MAILER_ENV=production")

    host = urlsplit(base_url).hostname or "localhost"
    mail_from = env.get("MAILER_MAIL_FROM", f"Mailer <noreply@{host}>")
    secret_key = _secret_key(env, instance, production)
    # Derived from the secret unless set: set it explicitly before ever rotating the secret, or
    # events recorded after the rotation no longer link to the same person's earlier ones.
    ledger_key = (
        env.get("MAILER_LEDGER_KEY", "").encode()
        or hmac.new(secret_key.encode(), b"mailer.ledger-key.v1", hashlib.sha256).digest()
    )
    return Settings(
        env=mode,
        instance_path=instance,
        secret_key=secret_key,
        ledger_key=ledger_key,
        database_url=database_url,
        redis_url=redis_url,
        redis_embedded=redis_embedded,
        smtp_url=smtp_url,
        smtp_catcher=smtp_catcher,
        catcher_port=catcher_port,
        base_url=base_url,
        mail_from=mail_from,
        confirm_max_age=_int(env, "MAILER_CONFIRM_MAX_AGE", 7 * 24 * 3600),
        preferences_max_age=_int(env, "MAILER_PREFERENCES_MAX_AGE", 90 * 24 * 3600),
        confirmation_window=_int(env, "MAILER_CONFIRMATION_WINDOW", 600),
        min_fill_seconds=_int(env, "MAILER_MIN_FILL_SECONDS", 2),
        signup_rate_limit=env.get("MAILER_SIGNUP_RATE_LIMIT", "10/minute;100/hour"),
        address_rate_limit=env.get("MAILER_ADDRESS_RATE_LIMIT", "5/hour"),
        resend_rate_limit=env.get("MAILER_RESEND_RATE_LIMIT", "3/hour"),
        login_rate_limit=env.get("MAILER_LOGIN_RATE_LIMIT", "5/minute"),
        max_body_bytes=_int(env, "MAILER_MAX_BODY_BYTES", 64 * 1024),
        dkim_domain=env.get("MAILER_DKIM_DOMAIN", ""),
        dkim_selector=env.get("MAILER_DKIM_SELECTOR", ""),
        dkim_key_path=env.get("MAILER_DKIM_PRIVATE_KEY", ""),
        node_binary=env.get("MAILER_NODE", "node"),
        proxy_count=_int(env, "MAILER_PROXY_COUNT", 0),
        base_url_explicit=bool(env.get("MAILER_BASE_URL")),
        truncate_ip=_bool(env, "MAILER_TRUNCATE_IP", False),
        controller={
            "name": env.get("MAILER_CONTROLLER_NAME", "Example Publisher"),
            "email": env.get("MAILER_CONTROLLER_EMAIL", f"privacy@{host}"),
            "address": env.get("MAILER_CONTROLLER_ADDRESS", ""),
            "phone": env.get("MAILER_CONTROLLER_PHONE", ""),
            "url": env.get("MAILER_CONTROLLER_URL", base_url),
            "policy_url": env.get("MAILER_POLICY_URL", f"{base_url}/privacy"),
            "jurisdiction": env.get("MAILER_JURISDICTION", "EU"),
        },
        secure_cookies=_bool(env, "MAILER_SECURE_COOKIES", production),
        send_rate_per_second=_int(env, "MAILER_SEND_RATE_PER_SECOND", 0),
        send_rate_per_hour=_int(env, "MAILER_SEND_RATE_PER_HOUR", 0),
        send_batch_size=max(1, _int(env, "MAILER_SEND_BATCH_SIZE", 200)),
        send_jobs=max(1, _int(env, "MAILER_SEND_JOBS", 4)),
        send_concurrency=max(1, _int(env, "MAILER_SEND_CONCURRENCY", 4)),
        claim_lease=max(1, _int(env, "MAILER_CLAIM_LEASE", 60)),
        sending_lease=max(1, _int(env, "MAILER_SENDING_LEASE", 180)),
        send_max_attempts=max(1, _int(env, "MAILER_SEND_MAX_ATTEMPTS", 6)),
        campaign_sweep_seconds=max(1, _int(env, "MAILER_CAMPAIGN_SWEEP_SECONDS", 30)),
        bounce_webhook_secret=env.get("MAILER_BOUNCE_WEBHOOK_SECRET", ""),
        unsubscribe_mailto=env.get("MAILER_UNSUBSCRIBE_MAILTO", ""),
        machine_open_seconds=_int(env, "MAILER_MACHINE_OPEN_SECONDS", 10),
        tracking_max_age=_int(env, "MAILER_TRACKING_MAX_AGE", 400 * 24 * 3600),
        retention_pending_days=max(1, _int(env, "MAILER_RETENTION_PENDING_DAYS", 30)),
        retention_tracking_days=max(1, _int(env, "MAILER_RETENTION_TRACKING_DAYS", 395)),
        export_ttl_hours=max(1, _int(env, "MAILER_EXPORT_TTL_HOURS", 24)),
        sender_identities=(SenderIdentity(*parseaddr(mail_from)),),
        track_opens_default=_bool(env, "MAILER_TRACK_OPENS", True),
        track_clicks_default=_bool(env, "MAILER_TRACK_CLICKS", True),
        login_lockout_attempts=max(0, _int(env, "MAILER_LOGIN_LOCKOUT_ATTEMPTS", 10)),
        login_lockout_window=max(1, _int(env, "MAILER_LOGIN_LOCKOUT_WINDOW", 900)),
        login_lockout_seconds=max(1, _int(env, "MAILER_LOGIN_LOCKOUT_SECONDS", 900)),
    )
