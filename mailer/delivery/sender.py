"""Turn a rendered email into signed bytes on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parseaddr

from mailer.config import Settings
from mailer.delivery import dkim, mime, transport
from mailer.delivery.addresses import wire_address
from mailer.delivery.pool import Outcome, SmtpConnection


class Sender:
    def __init__(self, settings: Settings) -> None:
        self.target = transport.SmtpTarget.from_url(settings.smtp_url)
        self.dkim_key = dkim.DkimKey.load(
            settings.dkim_domain,
            settings.dkim_selector,
            settings.dkim_key_path,
            settings.dkim_private_key,
        )
        self.mail_from = settings.mail_from
        self._connection: SmtpConnection | None = None

    @contextmanager
    def one_connection(self) -> Iterator[Sender]:
        """Send everything inside over one SMTP connection, opened at the first message (a
        batch of confirmations: no handshake, TLS or login per email). Reconnects after a
        failure; a message whose fate is unknown (the connection lost after its body was
        sent) is reported as a temporary failure, as a one-message connection reports it."""
        self._connection = SmtpConnection(self.target)
        try:
            yield self
        finally:
            connection, self._connection = self._connection, None
            connection.close()

    def send(self, envelope: mime.Envelope, text: str, html: str) -> bytes:
        """Build, sign and send; returns the bytes sent. Raises `transport.SendError`."""
        data = mime.encode(envelope, text, html)
        if self.dkim_key is not None:
            data = dkim.sign(data, self.dkim_key)
        return_path = parseaddr(envelope.sender)[1]
        if self._connection is None:
            transport.send(self.target, return_path, envelope.to_email, data)
            return data
        rcpt, utf8 = wire_address(envelope.to_email)
        result = self._connection.send(return_path, rcpt, data, smtputf8=utf8)
        if result.outcome is not Outcome.SENT:
            permanent = result.outcome is Outcome.PERMANENT
            raise transport.SendError(result.detail, permanent=permanent, code=result.code)
        return data
