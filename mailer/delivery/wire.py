"""Messages as wire bytes, assembled directly (no `EmailMessage`): campaigns and system emails.

`email.message.EmailMessage` with policy serialisation costs hundreds of microseconds to
milliseconds a message; a campaign message has one fixed shape, so we write it ourselves:
multipart/alternative with a text/plain and a text/html part, both UTF-8 quoted-printable,
CRLF line endings, lines of at most 76 characters in the bodies (the SMTP client dot-stuffs).
The body stays a list of whole-line chunks until it is sent (`Alternative`), most of them the
same objects in every message of a campaign, so the DKIM signer canonicalises those once.
Headers that come from people (names, subjects) are RFC 2047-encoded when they are not plain
printable ASCII or could be read as encoded words; CR, LF and NUL are refused
(`HeaderInjection`), never folded away. The tests parse the output with Python's email
parser and verify its DKIM signature with dkimpy.
"""

from __future__ import annotations

import binascii
import re
from email.utils import formatdate

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_QUOTED_ESCAPES = re.compile(r'[\\"]')
LINE = 78


class HeaderInjection(ValueError):
    """A header value would break the header block (a line break or NUL)."""


def clean(value: str, name: str) -> str:
    if _FORBIDDEN.search(value):
        raise HeaderInjection(f"{name} contains a line break or NUL")
    return value


def _needs_encoding(value: str) -> bool:
    return not (value.isascii() and value.isprintable()) or "=?" in value


_WORD_OVERHEAD = len("=?utf-8?b??=")


def _utf8_cut(data: bytes, limit: int) -> int:
    """The longest prefix of `data` up to `limit` bytes that ends on a character boundary."""
    if limit >= len(data):
        return len(data)
    while limit > 0 and data[limit] & 0xC0 == 0x80:  # a continuation byte: back off
        limit -= 1
    return limit


def _encoded_words(value: str, name: str) -> str:
    """`value` as RFC 2047 "B" encoded words of UTF-8, whole characters in each word, folded so
    that no line passes 76 characters (the first line holds `name: `). What email.header
    does, at a tenth of its cost (a campaign encodes a personalised subject per message)."""
    data = value.encode("utf-8")
    words = []
    room = LINE - 2 - len(name) - 2  # "Name: " on the first line, 76 columns
    while data or not words:
        limit = max((room - _WORD_OVERHEAD) // 4 * 3, 3)
        cut = _utf8_cut(data, limit) or _utf8_cut(data, limit + 3)
        words.append("=?utf-8?b?" + binascii.b2a_base64(data[:cut], newline=False).decode() + "?=")
        data = data[cut:]
        room = LINE - 2 - 1  # continuation lines start with one space
    return "\r\n ".join(words)


def phrase(name: str, header: str) -> str:
    """A display name as it goes in an address header."""
    name = " ".join(clean(name, f"{header} name").split())
    if not name:
        return ""
    if _needs_encoding(name):
        return _encoded_words(name, header)
    if _SPECIALS.search(name):
        return '"' + _QUOTED_ESCAPES.sub(r"\\\g<0>", name) + '"'
    return name


def quoted_phrase(name: str, header: str) -> str:
    """A display name always in quotes unless encoded (List-Id's `"Topic Name" <...>`)."""
    text = phrase(name, header)
    if not text or text.startswith(("=?", '"')):
        return text
    return f'"{text}"'


def mailbox(name: str, address: str, header: str) -> str:
    display = phrase(name, header)
    address = clean(address, f"{header} address")
    return f"{display} <{address}>" if display else address


def _fold_words(name: str, value: str) -> str:
    lines: list[str] = []
    current = f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > LINE and current != f"{name}:":
            lines.append(current)
            current = ""
        current += " " + word
    lines.append(current)
    return "\r\n".join(lines)


def unstructured(name: str, value: str) -> str:
    """`Name: value` for free text (Subject): folded at spaces, encoded words when needed."""
    value = clean(value, name)
    if _needs_encoding(value) or any(len(w) > 900 for w in value.split(" ")):
        return f"{name}: {_encoded_words(value, name)}"
    return _fold_words(name, value)


def header(name: str, value: str) -> str:
    """A header whose value we made (URLs, ids): kept on one line, as clients want URLs."""
    return f"{name}: {clean(value, name)}"


def date() -> str:
    return header("Date", formatdate(usegmt=True))


def _normalised(text: str) -> bytes:
    if "\r" in text:  # str(): Markup.replace would escape
        text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return text.encode("utf-8")


def quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line endings and lines of at most 76 characters."""
    encoded = binascii.b2a_qp(_normalised(text), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _qp_piece(text: str) -> bytes:
    """One piece of a body, encoded on its own and ended by a line break (a soft one when the
    piece ends mid-line), so encoded pieces can be concatenated in any order. LF endings."""
    encoded = binascii.b2a_qp(_normalised(text), quotetabs=False, istext=True, header=False)
    if not encoded or encoded.endswith(b"\n"):
        return encoded
    if len(encoded) - (encoded.rfind(b"\n") + 1) <= 75:
        return encoded + b"=\n"
    # The last line is 76 long: the soft break's "=" needs a column; never split an =XX.
    cut = len(encoded) - 1
    if encoded[cut - 1 : cut] == b"=":
        cut -= 1
    elif encoded[cut - 2 : cut - 1] == b"=":
        cut -= 2
    return encoded[:cut] + b"=\n" + encoded[cut:] + b"=\n"


class QuotedPrintable:
    """Quoted-printable for rendered templates, the template's fixed text encoded once.

    A Jinja render yields the template's constant text as the same strings every time and the
    personalised values in between. Each piece is encoded on its own (soft line breaks join
    them, RFC 2045 6.7), so the constant pieces are encoded once per campaign and per message
    only the values are: `binascii.b2a_qp` over a whole 20 KB body costs more than the render.
    """

    MIN_KNOWN = 24  # shorter pieces are cheaper to encode than to remember

    def __init__(self) -> None:
        self.known: dict[str, bytes] = {}

    def learn(self, pieces: list[str]) -> None:
        """Remember the encoding of `pieces` from a sample render (constant text)."""
        for piece in pieces:
            if len(piece) >= self.MIN_KNOWN:
                self.known[piece] = _qp_piece(piece).replace(b"\n", b"\r\n")

    def chunks(self, pieces: list[str]) -> list[bytes]:
        """The encoding of `pieces` as whole-line chunks with CRLF endings; the constant ones
        are the same objects in every message (see `constant`)."""
        known = self.known
        out: list[bytes] = []
        pending: list[str] = []  # runs of values and short text are encoded together
        for piece in pieces:
            encoded = known.get(piece)
            if encoded is None:
                pending.append(piece)
                continue
            if pending:
                out.append(_qp_piece("".join(pending)).replace(b"\n", b"\r\n"))
                pending = []
            out.append(encoded)
        if pending:
            out.append(_qp_piece("".join(pending)).replace(b"\n", b"\r\n"))
        return out

    def encode(self, pieces: list[str]) -> bytes:
        return b"".join(self.chunks(pieces))

    def constant(self) -> list[bytes]:
        """The chunks every message repeats."""
        return list(self.known.values())


def part_header(subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")


class Alternative:
    """multipart/alternative with a text/plain and a text/html part, the framing made once.

    A message is `head + CRLF CRLF + b"".join(body)`; `body` is a list of whole-line chunks
    (the framing and the quoted-printable chunks), so a DKIM signer can canonicalise the
    constant ones once (`framing` lists them). `boundary` must be a string quoted-printable
    output can never hold (one starting with `=_`)."""

    def __init__(self, boundary: str) -> None:
        b = boundary.encode("ascii")
        self.content_type = f'Content-Type: multipart/alternative; boundary="{boundary}"'
        self.open = b"--" + b + b"\r\n" + part_header("plain")
        self.middle = b"\r\n--" + b + b"\r\n" + part_header("html")
        self.close = b"\r\n--" + b + b"--\r\n"
        self.framing = (self.open, self.middle, self.close)

    def head(self, headers: list[str], *, utf8: bool = False) -> bytes:
        """`headers` are complete header lines without CRLF; MIME headers are added."""
        text = "\r\n".join([*headers, "MIME-Version: 1.0", self.content_type])
        return text.encode("utf-8" if utf8 else "ascii")

    def body(self, text_chunks: list[bytes], html_chunks: list[bytes]) -> list[bytes]:
        return [self.open, *text_chunks, self.middle, *html_chunks, self.close]


def assemble(
    headers: list[str], boundary: str, text_qp: bytes, html_qp: bytes, *, utf8: bool = False
) -> bytes:
    """The whole message. `headers` are complete header lines without CRLF; the bodies are
    quoted-printable with CRLF; `boundary` must be a string quoted-printable output can never
    hold (one starting with `=_`)."""
    head = "\r\n".join(
        [
            *headers,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
        ]
    )
    b = boundary.encode("ascii")
    return b"".join(
        [
            head.encode("utf-8" if utf8 else "ascii"),
            b"\r\n\r\n--",
            b,
            b"\r\n",
            part_header("plain"),
            text_qp,
            b"\r\n--",
            b,
            b"\r\n",
            part_header("html"),
            html_qp,
            b"\r\n--",
            b,
            b"--\r\n",
        ]
    )
