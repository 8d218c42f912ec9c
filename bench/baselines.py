"""The two yardsticks a campaign send is measured against, run in the same session:

- the ceiling: `smtplib` sending pre-built identical bytes over one connection per process,
  the most a Python sender could push through this SMTP sink;
- the naive stack: a loop doing the campaign's job the obvious way, with Jinja (plain
  Environment), `email.message.EmailMessage` and, with DKIM, dkimpy's `dkim.sign`, over one
  smtplib connection per process. It personalises the same template with the same signed
  links (unsubscribe, preferences, view in browser, every click, the open pixel) and the same
  headers, but keeps no per-recipient state in the database: a stricter yardstick than a real
  naive sender, which would have to.

Each runs in `procs` forked processes that connect first, then start together on a barrier;
the rate is messages over the wall time from the barrier to the last process finishing.
"""

from __future__ import annotations

import multiprocessing
import smtplib
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import psycopg

FROM = "news@shop.example"


def _run(target: Any, procs: int, args: tuple) -> float:
    """Seconds from the common start to the last process's end; raises if one failed."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs + 1)
    children = [ctx.Process(target=target, args=(k, procs, barrier, *args)) for k in range(procs)]
    for child in children:
        child.start()
    try:
        barrier.wait(timeout=120)
        start = time.perf_counter()
        for child in children:
            child.join()
        seconds = time.perf_counter() - start
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"a baseline process failed (exit codes {failed})")
    return seconds


def _share(total: int, k: int, procs: int) -> int:
    return total // procs + (1 if k < total % procs else 0)


# --- the ceiling -----------------------------------------------------------------------------


def _ceiling_child(k: int, procs: int, barrier: Any, port: int, data: bytes, total: int) -> None:
    count = _share(total, k, procs)
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    barrier.wait()
    for _ in range(count):
        smtp.sendmail(FROM, ["reader@example.org"], data)
    smtp.quit()


def ceiling(port: int, data: bytes, total: int, procs: int) -> float:
    """Messages per second: `total` copies of `data` from `procs` processes."""
    return total / _run(_ceiling_child, procs, (port, data, total))


# --- the naive stack -------------------------------------------------------------------------


@dataclass(frozen=True)
class NaiveJob:
    """What the naive loop needs: the campaign's frozen content (Jinja in place), the tracked
    HTML and its link targets (rewritten once, as any tracker must), and the settings."""

    pg_url: str  # libpq URL
    topic_id: int
    subject: str
    html: str  # with {{ _click(N) }} and {{ _open_pixel }} in place
    text: str
    click_targets: list[str]
    secret_key: str
    base_url: str
    domain: str
    mailto: str
    dkim: tuple[bytes, bytes, bytes] | None  # selector, domain, PEM private key


def _naive_child(k: int, procs: int, barrier: Any, port: int, job: NaiveJob, total: int) -> None:
    import dkim
    from jinja2 import Environment

    from mailer.subscribers.links import Links
    from mailer.tokens import Purpose, Tokens
    from mailer.tracking.links import TrackingLinks

    tokens = Tokens(job.secret_key, dict.fromkeys(Purpose))
    links, tracking = Links(tokens, job.base_url), TrackingLinks(tokens, job.base_url)
    subject_t = Environment(autoescape=False).from_string(job.subject)  # noqa: S701 (a header)
    html_t = Environment(autoescape=True).from_string(job.html)
    text_t = Environment(autoescape=False).from_string(job.text)  # noqa: S701 (text/plain)
    count = _share(total, k, procs)
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    barrier.wait()
    with psycopg.connect(job.pg_url) as conn, conn.cursor(name="naive") as cur:
        cur.execute(
            "SELECT s.id, s.email, s.name, s.attributes FROM subscribers s "
            "JOIN subscriptions x ON x.subscriber_id = s.id "
            "WHERE x.topic_id = %s AND x.status = 'active' AND s.status = 'active' "
            "AND s.id %% %s = %s ORDER BY s.id LIMIT %s",
            (job.topic_id, procs, k, count),
        )
        for sid, email, name, attributes in cur:
            first = attributes.get("first_name") or (name.split() or [""])[0]
            unsubscribe = links.unsubscribe(sid, ["news"], None)

            def click(i: int, sid: int = sid) -> str:
                return tracking.click(sid, job.click_targets[i], i)

            context = {
                "subscriber": {
                    "email": email,
                    "name": name,
                    "first_name": first,
                    "attributes": attributes,
                },
                "unsubscribe_url": unsubscribe,
                "preferences_url": links.preferences(sid),
                "view_in_browser_url": tracking.view_in_browser(sid),
                "campaign": {"name": "Autumn letter"},
                "_click": click,
                "_open_pixel": tracking.open_pixel(sid),
            }
            subject = " ".join(subject_t.render(context).split())
            context["campaign"] = {"name": "Autumn letter", "subject": subject}
            msg = EmailMessage()
            msg["From"] = f"Shop <{FROM}>"
            msg["To"] = f"{name} <{email}>"
            msg["Subject"] = subject
            msg["Date"] = formatdate(usegmt=True)
            msg["Message-ID"] = make_msgid(domain=job.domain)
            msg["Reply-To"] = "help@shop.example"
            msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{job.mailto}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            msg["List-Id"] = f'"News" <news.list-id.{job.domain}>'
            msg["Feedback-ID"] = f"1:news:mailer:{job.domain}"
            msg["Precedence"] = "bulk"
            msg.set_content(text_t.render(context))
            msg.add_alternative(html_t.render(context), subtype="html")
            data = msg.as_bytes(policy=policy.SMTP)
            if job.dkim is not None:
                selector, domain, key = job.dkim
                data = (
                    dkim.sign(
                        data,
                        selector,
                        domain,
                        key,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[
                            b"from",
                            b"to",
                            b"subject",
                            b"date",
                            b"message-id",
                            b"list-unsubscribe",
                            b"list-unsubscribe-post",
                        ],
                    )
                    + data
                )
            smtp.sendmail(FROM, [email], data)
    smtp.quit()


def naive(port: int, job: NaiveJob, total: int, procs: int) -> float:
    """Messages per second of the naive loop over the first `total` audience members."""
    return total / _run(_naive_child, procs, (port, job, total))
