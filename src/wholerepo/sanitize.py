"""Make hostile model text safe to show: in a terminal, in files, and in GitHub Markdown.

Everything a model says (paths, titles, bodies, suggestions, quotes, the summary) is data that an
attacker may have steered through the repository. These pure helpers remove what could drive a
terminal (ANSI/control sequences), reorder text (bidi overrides), ping people (@mentions), inject
HTML or images, or forge wholerepo's own hidden markers in a GitHub comment.
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
