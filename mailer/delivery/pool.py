"""One SMTP connection reused for many messages, with every outcome told apart.

Campaign senders keep a connection open across a batch (no handshake per message) and need to
know, for each message, whether it was refused for good, may be retried, or *might have been
accepted*: a connection lost after the final "." was sent and before the reply arrived. That
last case is the one unavoidable window of doubt; the caller records it as "unknown" instead
of sending again.

When the server offers ESMTP PIPELINING (RFC 2920; Postfix does), MAIL, RCPT and DATA go in
one write and the body after the 354: two round trips a message instead of four. The body is
never sent before the server has accepted the recipient and DATA, so the window of doubt is
the same as without pipelining.
"""

from __future__ import annotations

import enum
import smtplib
import ssl
from dataclasses import dataclass

from mailer.delivery.transport import SmtpTarget, _reply

# Many receiving servers cap messages per connection; reconnecting now and then is cheap.
MESSAGES_PER_CONNECTION = 500


class Outcome(enum.Enum):
    SENT = "sent"
    PERMANENT = "permanent"  # 5xx for this recipient: fail and suppress
    TEMPORARY = "temporary"  # 4xx or trouble before the body was sent: retry later
    UNKNOWN = "unknown"  # lost after the body was sent: may have been accepted


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str = ""
    code: int | None = None
    # The connection is unusable (closed, 421): the caller should back off before the next try.
    connection_lost: bool = False


def _stuffed(msg: bytes) -> bytes:
    """The message as DATA sends it: leading dots doubled (what smtplib's regex does, as two
    byte-string replacements), ended by CRLF "." CRLF."""
    if msg.startswith(b"."):
        msg = b"." + msg
    msg = msg.replace(b"\n.", b"\n..")
    if msg[-2:] != b"\r\n":
        msg += b"\r\n"
    return msg + b".\r\n"


class _Client(smtplib.SMTP):
    """smtplib's DATA step, noting when the whole body has been written."""

    body_sent = False

    def data(self, msg: bytes) -> tuple[int, bytes]:  # type: ignore[override]
        self.body_sent = False
        self.putcmd("data")
        code, repl = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, repl)
        return self.body(msg)

    def body(self, msg: bytes) -> tuple[int, bytes]:
        """After a 354: the message, then the server's verdict on it."""
        self.send(_stuffed(msg))
        self.body_sent = True
        return self.getreply()


class _TlsClient(_Client, smtplib.SMTP_SSL):
    pass


class SmtpConnection:
    """Not thread-safe; one per sender. Use as a context manager."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._client: _Client | None = None
        self._count = 0

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _connect(self) -> _Client:
        target = self.target
        if target.implicit_tls:
            client: _Client = _TlsClient(
                target.host,
                target.port,
                timeout=target.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = _Client(target.host, target.port, timeout=target.timeout)
        client.ehlo()
        if target.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if target.username:
            client.login(target.username, target.password or "")
        self._count = 0
        return client

    def send(self, mail_from: str, rcpt: str, data: bytes, smtputf8: bool = False) -> Result:
        if self._client is not None and self._count >= MESSAGES_PER_CONNECTION:
            self.close()
        if self._client is None:
            try:
                self._client = self._connect()
            except smtplib.SMTPResponseException as exc:
                self.close()
                detail = f"{exc.smtp_code} {_reply(exc.smtp_error)}"
                return Result(Outcome.TEMPORARY, detail, exc.smtp_code, connection_lost=True)
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                detail = f"{type(exc).__name__}: {exc}"
                return Result(Outcome.TEMPORARY, detail, connection_lost=True)
        client = self._client
        self._count += 1
        client.body_sent = False
        try:
            return self._transaction(client, mail_from, rcpt, data, smtputf8)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            ambiguous = client.body_sent
            self._client = None
            client.close()
            detail = f"{type(exc).__name__}: {exc}"
            outcome = Outcome.UNKNOWN if ambiguous else Outcome.TEMPORARY
            return Result(outcome, detail, connection_lost=True)

    def _transaction(
        self, client: _Client, mail_from: str, rcpt: str, data: bytes, smtputf8: bool
    ) -> Result:
        if any(ch in mail_from or ch in rcpt for ch in "\r\n<>"):
            # The caller checks addresses; this is the last line against command injection.
            raise ValueError("an SMTP address contains a line break or angle bracket")
        options = ["SMTPUTF8", "BODY=8BITMIME"] if smtputf8 else []
        if client.has_extn("pipelining") and (not smtputf8 or client.has_extn("smtputf8")):
            return self._pipelined(client, mail_from, rcpt, data, options)
        code, reply = client.mail(mail_from, options)
        if code != 250:
            return self._refused(client, code, reply, recipient_level=False)
        code, reply = client.rcpt(rcpt)
        if code not in (250, 251):
            return self._refused(client, code, reply, recipient_level=True)
        try:
            code, reply = client.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
            return self._refused(client, exc.smtp_code, exc.smtp_error, recipient_level=True)
        if code != 250:
            return self._refused(client, code, reply, recipient_level=True)
        return Result(Outcome.SENT, _reply(reply)[:500], code)

    def _pipelined(
        self, client: _Client, mail_from: str, rcpt: str, data: bytes, options: list[str]
    ) -> Result:
        """RFC 2920: MAIL, RCPT and DATA in one write, their three replies read together, then
        the body: two round trips a message instead of four. The body goes only after a 354,
        so a refusal of MAIL or RCPT costs no more than it did, and the outcomes are told
        apart exactly as in the one-command-at-a-time exchange."""
        client.command_encoding = "utf-8" if options else "ascii"
        extra = " " + " ".join(options) if options else ""
        # Bare addresses (checked by the caller), so no parsing as smtplib's quoteaddr does.
        client.send(f"MAIL FROM:<{mail_from}>{extra}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")
        replies = []
        for _command in range(3):
            code, reply = client.getreply()
            replies.append((code, reply))
            if code in (421, -1):  # the server is closing: no more replies will come
                return self._refused(client, code, reply, recipient_level=False)
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
        if data_code == 354 and (mail_code != 250 or rcpt_code not in (250, 251)):
            # DATA accepted without a valid recipient (servers should not): end it empty.
            client.send(b".\r\n")
            client.getreply()
        if mail_code != 250:
            return self._refused(client, mail_code, mail_reply, recipient_level=False)
        if rcpt_code not in (250, 251):
            return self._refused(client, rcpt_code, rcpt_reply, recipient_level=True)
        if data_code != 354:
            return self._refused(client, data_code, data_reply, recipient_level=True)
        code, reply = client.body(data)
        if code != 250:
            return self._refused(client, code, reply, recipient_level=True)
        return Result(Outcome.SENT, _reply(reply)[:500], code)

    def _refused(self, client: _Client, code: int, reply: bytes, recipient_level: bool) -> Result:
        detail = f"{code} {_reply(reply)}"[:1000]
        if code == 421 or code == -1:  # the server is closing the connection
            self._client = None
            client.close()
            return Result(Outcome.TEMPORARY, detail, code, connection_lost=True)
        try:
            client.rset()
        except (smtplib.SMTPException, OSError):
            self._client = None
            client.close()
        # A 5xx to MAIL FROM is about us (our sender, our reputation), not this address.
        if recipient_level and 500 <= code < 600:
            return Result(Outcome.PERMANENT, detail, code)
        return Result(Outcome.TEMPORARY, detail, code)
