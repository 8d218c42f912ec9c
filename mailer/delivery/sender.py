"""Turn a rendered email into signed bytes on the wire."""

from __future__ import annotations

from email.utils import parseaddr

from mailer.config import Settings
from mailer.delivery import dkim, mime, transport


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

    def send(self, envelope: mime.Envelope, text: str, html: str) -> bytes:
        """Build, sign and send; returns the bytes sent. Raises `transport.SendError`."""
        data = mime.serialize(mime.build(envelope, text, html))
        if self.dkim_key is not None:
            data = dkim.sign(data, self.dkim_key)
        return_path = parseaddr(envelope.sender)[1]
        transport.send(self.target, return_path, envelope.to_email, data)
        return data
