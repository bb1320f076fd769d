"""Make hostile text safe to show: in a terminal, in files, and in GitHub Markdown.

Everything a model says (paths, titles, bodies, suggestions, quotes, the summary) is data that an
attacker may have steered through the repository. These pure helpers remove what could drive a
terminal (ANSI/control sequences), reorder text (bidi overrides), ping people (@mentions), inject
HTML or images, or forge wholerepo's own hidden markers in a GitHub comment. File names from the
repository are escaped (``escape_path``), never stripped: each stays visible and distinct.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# The prefix of every hidden marker wholerepo writes into a GitHub comment. Model text can never
# contain it intact: every "<!--" in model text is broken by neutralise_markers().
MARKER_PREFIX = "<!-- wholerepo"

ZWSP = "\u200b"
ELLIPSIS = "…"

# Escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), other ESC-introduced
# two-character sequences, and their 8-bit C1 forms (0x9b CSI, 0x9d OSC).
_ANSI = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?          # CSI
  | (?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?   # OSC
  | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?      # DCS, SOS, PM, APC strings
  | \x1b.?                                      # any other escape
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 controls except \t and \n, DEL, C1 controls; bidi embeddings/overrides/isolates and marks;
# Unicode "tag" characters (invisible ASCII smuggling); lone surrogates (unencodable in UTF-8).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
    "\U000e0000-\U000e007f\ud800-\udfff]"
)
_NEWLINES = re.compile("\r\n?|[\u2028\u2029\x85]")
_SPACES = re.compile(r"\s+")
_MENTION = re.compile(r"@(?=[A-Za-z0-9_])")
_COMMENT_OPEN = re.compile(r"<(?=!)")
_LT_UNBROKEN = re.compile("<(?!\u200b)")
_IMAGE = re.compile(r"!(?=\[)")


def strip_control(text: str) -> str:
    """Remove ANSI/escape sequences, control characters (keeping \\n and \\t) and bidi controls."""
    text = _NEWLINES.sub("\n", text)
    text = _ANSI.sub("", text)
    return _INVISIBLE.sub("", text)


def cap(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut text ends with an ellipsis."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def clean_text(text: object, limit: int = 20_000) -> str:
    """Any value as safe plain text: a string without control sequences, capped in length."""
    if text is None:
        return ""
    value = text if isinstance(text, str) else str(text)
    # Cap before and after: cheap on huge input, exact on the result. Markers are broken here too:
    # plain text (terminal, JSON, SARIF) may be pasted or posted where a forged marker would count.
    return cap(neutralise_markers(strip_control(value[: limit * 2 + 64])), limit)


def one_line(text: object, limit: int = 300) -> str:
    """Clean text on one line: all whitespace runs become one space."""
    return cap(_SPACES.sub(" ", clean_text(text, limit * 2 + 64)).strip(), limit)


def neutralise_markers(text: str) -> str:
    """Break every HTML comment opener so model text can never forge a wholerepo marker."""
    return _COMMENT_OPEN.sub("<" + ZWSP, text)


def neutralise_mentions(text: str) -> str:
    """Stop ``@user`` and ``@org/team`` from notifying anyone on GitHub."""
    return _MENTION.sub("@" + ZWSP, text)


def markdown_text(text: object, limit: int = 20_000) -> str:
    """Model prose for Markdown: no HTML, comments, autolinks, images or mentions."""
    value = clean_text(text, limit)
    # A zero-width space after "<" keeps the character visible but never starts a tag, a
    # comment (our markers) or an autolink, and reads the same inside code spans.
    value = _LT_UNBROKEN.sub("<" + ZWSP, value)
    value = _IMAGE.sub("!" + ZWSP, value)
    return neutralise_mentions(value)


def markdown_inline(text: object, limit: int = 300) -> str:
    """Model text for one Markdown line (a title): like markdown_text, on one line."""
    return markdown_text(one_line(text, limit), limit + 16)


def code_text(text: object, limit: int = 20_000) -> str:
    """Model text for a fenced code block: literal there, so only markers need breaking."""
    return neutralise_markers(clean_text(text, limit))


def backtick_fence(text: str, char: str = "`") -> str:
    """A code fence longer than any run of ``char`` inside ``text``."""
    longest = max((len(m) for m in re.findall(re.escape(char) + "+", text)), default=0)
    return char * max(3, longest + 1)


def code_span(text: object, limit: int = 300) -> str:
    """Inline code for a path or identifier, delimited by more backticks than it contains."""
    value = neutralise_markers(one_line(text, limit))
    if not value:
        return "``"
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or longest else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def blockquote(text: str) -> str:
    """Prefix every line with "> " so headings and unbalanced fences stay inside the quote."""
    return "\n".join(f"> {line}".rstrip() for line in text.split("\n"))


def safe_url(url: object, limit: int = 500) -> str:
    """An endpoint URL without user info, query or fragment (they may carry credentials)."""
    value = one_line(url, limit * 2)
    try:
        parts = urlsplit(value)
    except ValueError:
        return cap(value.split("?", 1)[0].split("#", 1)[0], limit)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    if parts.netloc and ":" in host:  # an IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return cap(urlunsplit((parts.scheme, netloc, parts.path, "", "")), limit)


# What a file name cannot show as it is: a backslash (the escape character itself), C0 and C1
# controls but tab, and DEL (a newline would forge a "## File:" header or a terminal line), line and
# paragraph separators, bidi and zero-width characters, Unicode tags, and the lone surrogates
# that stand for bytes which are not UTF-8 (names are decoded with surrogateescape).
_NAME_UNSAFE = re.compile(
    "[\\\\\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]"
)
_NAME_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_NAME_ESCAPE = re.compile(r"\\(?:([\\nr])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAME_NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as surrogateescape decoded it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_path(path: str) -> str:
    """A file name as shown everywhere (packs, reports, manifest, terminal): printable, one line.

    Names without anything to escape, nearly all of them, come back unchanged. Otherwise a
    backslash becomes ``\\\\``, newline and carriage return ``\\n`` and ``\\r``, other controls
    but tab ``\\xNN``, a byte that is not UTF-8 ``\\xNN`` (80-ff) and invisible or bidi
    characters ``\\uNNNN``. Deterministic and one-to-one: ``unescape_path`` gives the name back.
    """
    if _NAME_UNSAFE.search(path) is None:
        return path
    return _NAME_UNSAFE.sub(_escape_char, path)


def _unescape_match(match: re.Match[str]) -> str:
    named, byte, short, wide = match.groups()
    if named is not None:
        return {"\\": "\\", "n": "\n", "r": "\r"}[named]
    if byte is not None:
        code = int(byte, 16)
        return chr(code) if code < 0x80 else chr(0xDC00 + code)
    return chr(int(short or wide, 16))


def unescape_path(shown: str) -> str:
    """The name ``escape_path`` was given (undecodable bytes as surrogateescape characters)."""
    if "\\" not in shown:
        return shown
    return _NAME_ESCAPE.sub(_unescape_match, shown)
