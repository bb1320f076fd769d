"""Secret redaction: remove credentials from a file's text and keep everything else.

Only the secret value is replaced, by ``[REDACTED:<kind>]``; no newline is added or removed,
so every line keeps its number. Detection combines detect-secrets' plugin regexes, patterns for
the formats it lacks, and a keyword-plus-entropy check for assigned values.

Speed: a file is first reduced to the lines that hold a run of 16 or more token characters
(found with ``bytes.translate`` and ``bytes.find``, both in C); each rule then runs only if one
of its literal markers occurs in those lines. Importing detect-secrets costs about a third of a
second (it pulls in ``requests``), so it happens on the first line that needs one of its regexes.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import importlib
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

__all__ = ["Redactor", "placeholder"]


def placeholder(kind: str) -> str:
    """The text a secret of ``kind`` is replaced with."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret: its kind and the spans of text it occupies (a PEM block has one per line)."""

    kind: str
    spans: tuple[tuple[int, int], ...]


# --- rules ----------------------------------------------------------------------------------

PatternSource = Callable[[], "re.Pattern[str]"]
Check = Callable[[str, str], bool]  # (value, its line) -> keep it as a secret?


@dataclass(frozen=True)
class Rule:
    """A token format: a regex (ours or detect-secrets') run only where one of its markers occurs."""

    kind: str
    markers: tuple[str, ...]  # literal strings: a plain substring search is the cheapest gate
    pattern: PatternSource
    group: int = 0  # the group holding the value (0: the whole match)
    extend: str = ""  # characters a value may continue with past a regex that under-matches
    check: Check | None = None
    # For markers common in code: a cheap regex that must match before detect-secrets is imported.
    shape: re.Pattern[str] | None = None
    glued_to: str = ""  # a word the value may directly follow (Telegram's URLs: "bot<token>")


@cache
def _ds_pattern(module: str, cls: str, index: int) -> re.Pattern[str]:
    plugin: Any = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)
    return cast("re.Pattern[str]", list(plugin.denylist)[index])


def _ds(module: str, cls: str, index: int = 0) -> PatternSource:
    """A regex from a detect-secrets plugin's ``denylist``, imported on first use."""
    return lambda: _ds_pattern(module, cls, index)


def _own(pattern: str, flags: int = 0) -> PatternSource:
    compiled = re.compile(pattern, flags)
    return lambda: compiled


ALNUM = string.ascii_letters + string.digits
_HEX = frozenset(string.hexdigits)


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character (detect-secrets' formula over the value's own characters)."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in (value.count(ch) for ch in set(value)))


def _classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )


def _mixed(value: str, _line: str = "") -> bool:
    """Letters and digits both: random tokens have them, words and identifiers mostly do not."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _not_hex_digest(value: str, line: str) -> bool:
    """AWS secret keys are base64: a 40-hex value next to "aws" is a commit hash or a digest."""
    return not set(value) <= _HEX and _classes(value) >= 2


def _jwt_valid(value: str, _line: str) -> bool:
    from detect_secrets.plugins.jwt import JwtTokenDetector

    head = ".".join(value.split(".")[:2])
    return bool(JwtTokenDetector.is_formally_valid(head))


def _discord_valid(value: str, _line: str) -> bool:
    """The first part of a Discord bot token is the bot's numeric id in base64."""
    first = value.split(".", 1)[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit()


_SK_PREFIX = re.compile(r"sk-(?:(?:proj|svcacct|admin|ant-api\d\d|ant-admin\d\d)-)?")


def _sk_valid(value: str, _line: str) -> bool:
    """``sk-`` starts many words-with-dashes: the rest must look random."""
    prefix = _SK_PREFIX.match(value)
    body = value[prefix.end() :] if prefix else value
    return _mixed(body) and _entropy(body) >= 3.0


def _sk_kind(value: str) -> str:
    if value.startswith("sk-ant-"):
        return "anthropic-key"
    if re.fullmatch(r"sk-[0-9a-f]{32}", value):
        return "deepseek-key"
    return "openai-key"


# Order is priority: an earlier rule wins where two find the same text.
_GH = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
RULES: tuple[Rule, ...] = (
    Rule(
        "aws-access-key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        _ds("aws", "AWSKeyDetector", 0),
    ),
    Rule(
        "aws-secret-key",
        ("aws", "AWS", "Aws"),
        _ds("aws", "AWSKeyDetector", 1),
        group=1,
        check=_not_hex_digest,
        shape=re.compile(r"['\"][0-9a-zA-Z/+]{40}['\"]"),
    ),
    Rule("github-token", _GH, _ds("github_token", "GitHubTokenDetector"), extend=ALNUM + "_"),
    Rule("github-token", _GH, _own(r"github_pat_[A-Za-z0-9_]{60,255}")),
    *(
        Rule("gitlab-token", markers, _ds("gitlab_token", "GitLabTokenDetector", i))
        for i, markers in enumerate(
            (
                ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"),
                ("GR1348941",),
                ("glcbt-",),
                ("glimt-",),
                ("glptt-",),
                ("glagent-",),
                ("gloas-",),
            )
        )
    ),
    Rule("slack-token", ("xox", "XOX"), _ds("slack", "SlackDetector", 0), extend=ALNUM + "-"),
    Rule("slack-token", ("xapp-",), _own(r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+")),
    Rule(
        "slack-webhook",
        ("hooks.slack.com",),
        _own(r"hooks\.slack\.com/(?:services|workflows)/(T[A-Za-z0-9_]+/[A-Za-z0-9_/]+)"),
        group=1,
    ),
    Rule("stripe-key", ("sk_live_", "rk_live_"), _ds("stripe", "StripeDetector"), extend=ALNUM),
    *(
        Rule(
            "twilio-key",
            (prefix,),
            _ds("twilio", "TwilioKeyDetector", i),
            check=_mixed,
            shape=re.compile(prefix + r"[0-9a-f]{32}"),
        )
        for i, prefix in enumerate(("AC", "SK"))
    ),
    Rule("sendgrid-key", ("SG.",), _ds("sendgrid", "SendGridDetector")),
    *(Rule("pypi-token", ("pypi-AgE",), _ds("pypi_token", "PypiTokenDetector", i)) for i in range(2)),
    Rule("npm-token", ("npm_",), _own(r"npm_[A-Za-z0-9]{36}"), extend=ALNUM),
    Rule(
        "npm-token",  # detect-secrets' NpmDetector matches the whole line: too wide to cut out
        ("_authToken",),
        _own(r":_authToken=\s*([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"),
        group=1,
    ),
    Rule(
        "jwt",
        ("eyJ",),
        _own(r"eyJ[A-Za-z0-9_-]{8,}={0,2}\.[A-Za-z0-9_-]{8,}={0,2}(?:\.[A-Za-z0-9_\-+/]*={0,2})?"),
        check=_jwt_valid,
    ),
    Rule(
        "azure-storage-key",
        ("AccountKey=",),
        _own(r"(?:SharedAccessKey|AccountKey)=([A-Za-z0-9+/]{32,}={0,2})"),
        group=1,
    ),
    Rule("azure-sas-token", ("sig=",), _own(r"[?&]sig=([A-Za-z0-9%+/]{40,}={0,2})"), group=1),
    Rule("openai-key", ("T3BlbkFJ",), _ds("openai", "OpenAIDetector")),
    Rule(
        "openai-key",  # refined by _sk_kind: OpenAI, DeepSeek or Anthropic
        ("sk-",),
        _own(_SK_PREFIX.pattern + r"[A-Za-z0-9_-]{20,}"),
        check=_sk_valid,
    ),
    Rule("google-api-key", ("AIza",), _own(r"AIza[0-9A-Za-z_-]{35}")),
    Rule("gcp-client-secret", ("GOCSPX-",), _own(r"GOCSPX-[A-Za-z0-9_-]{28}")),
    Rule(
        "mailchimp-key",
        ("-us",),
        _ds("mailchimp", "MailchimpDetector"),
        shape=re.compile(r"-us\d"),
    ),
    Rule("mailgun-key", ("key-",), _own(r"key-[0-9a-zA-Z]{32}"), check=_mixed),
    Rule("square-secret", ("sq0csp-",), _ds("square_oauth", "SquareOAuthDetector")),
    Rule("artifactory-token", ("AKCp",), _own(r"AKCp[A-Za-z0-9]{60,}")),
    Rule("heroku-key", ("HRKU-",), _own(r"HRKU-[A-Za-z0-9_-]{58,}")),
    Rule(
        "heroku-key",
        ("heroku", "HEROKU", "Heroku"),
        _own(
            r"heroku\w*(?:key|token|secret)\w*['\"]?\s*(?:=|:|:=|=>)\s*['\"]?"
            r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
            re.IGNORECASE,
        ),
        group=1,
    ),
    Rule(
        "discord-token",
        (".",),
        _ds("discord", "DiscordBotTokenDetector"),
        check=_discord_valid,
        shape=re.compile(
            r"\.(?:(?<=[MNO][\w-]{23}\.)|(?<=[MNO][\w-]{24}\.)|(?<=[MNO][\w-]{25}\.))[\w-]{6}\.[\w-]{27}",
            re.ASCII,
        ),
    ),
    Rule(
        "discord-webhook",
        ("/api/webhooks/",),
        _own(r"discord(?:app)?\.com/api/webhooks/\d+/([A-Za-z0-9_-]{60,})"),
        group=1,
    ),
    Rule(
        "telegram-token",
        (":AA",),
        _ds("telegram_token", "TelegramBotTokenDetector"),
        check=lambda value, line: _mixed(value.split(":", 1)[1]),
        glued_to="bot",
    ),
    Rule("vault-token", ("hvs.", "hvb.", "hvr."), _own(r"hv[sbr]\.[A-Za-z0-9_-]{24,}")),
    Rule(
        "shopify-token",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        _own(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ),
    Rule(
        "bearer-token",
        ("Bearer", "bearer"),
        _own(r"[Bb]earer\s+([A-Za-z0-9_\-.~+/]{20,}={0,2})"),
        group=1,
        check=lambda value, line: _random_looking(value),
    ),
)

# --- value heuristics -----------------------------------------------------------------------

# Words that mark a value as an example, a template or a test stand-in rather than a credential.
_FAKE = re.compile(
    r"example|sample|dummy|placeholder|change[-_]?(?:me|it)|your[-_]?|xxxx|\*\*\*|\.\.\.|<|>|"
    r"fake|mock|test|redacted|secret|passw|token|insert|replace|todo|foobar|"
    r"0123456|1234567|abcdefg|(.)\1{5}",
    re.IGNORECASE,
)
_TEMPLATE = re.compile(r"^[$%{<]|\$\{|\{\{|%\(|%s\b|^\w+\(|^\[REDACTED")
_IDENTIFIER = re.compile(
    r"[a-z][a-z0-9]*(?:[_.\-][a-z0-9]+)+|[A-Z][A-Z0-9]*(?:[_.\-][A-Z0-9]+)+|"
    r"[A-Za-z][a-z]+(?:[A-Z][a-z]+)+\d*|[a-z]+(?:[A-Z][a-z]+)+\d*"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _looks_fake(value: str) -> bool:
    return bool(_FAKE.search(value) or _TEMPLATE.search(value))


_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}")


def _wordy(value: str) -> bool:
    """Mostly English-looking words (CamelCase, dotted names): random text rarely is."""
    return sum(len(w) for w in _WORD.findall(value)) * 2 > len(value)


def _random_looking(value: str) -> bool:
    """High entropy as detect-secrets measures it, with thresholds that spare ordinary code."""
    n = len(value)
    if n < 16 or n > 1000 or (value.isalpha() and n < 32) or value.isdigit():
        return False  # random strings this short almost always hold a digit
    if _looks_fake(value) or _NOT_TOKEN.search(value) or ":" in value or value.startswith(("/", "./")):
        return False  # ":" marks ARNs, URNs, times and key:value pairs
    if _UUID.fullmatch(value) or _IDENTIFIER.fullmatch(value) or _wordy(value):
        return False
    entropy = _entropy(value)
    if set(value) <= _HEX:  # detect-secrets' hex limit (3.0) on at least 20 hex digits
        return n >= 20 and entropy > 3.0
    if not _DIGIT.search(value):
        return entropy >= 4.3
    return entropy >= min(4.0, math.log2(n) - 0.7)


_NOT_TOKEN = re.compile(r"[\[\]{}<>\\|]|\(\?|://|^\d{4}-\d\d-\d\d")  # regexes, templates, URLs, dates


def _password_like(value: str) -> bool:
    """A value assigned to a password name: short is fine, but not a word, template or example."""
    if not 8 <= len(value) <= 200 or _looks_fake(value) or _NOT_TOKEN.search(value):
        return False
    if _IDENTIFIER.fullmatch(value) or value.isalpha() or value.isdigit():
        return False
    symbols = any(not c.isalnum() for c in value)
    return _classes(value) + symbols >= 2 and len(set(value)) >= 6


# --- where rules look ------------------------------------------------------------------------

_RUN_MIN = 16
_RUN_CHARS = (string.ascii_letters + string.digits + "+/=_-").encode()
_RUN_TABLE = bytes(0x78 if c in _RUN_CHARS else 0x20 for c in range(256))
_PLAIN_RUN_CHARS = (string.ascii_lowercase + "+/=_-").encode()


def _long_run_lines(text: str) -> list[tuple[int, int]]:
    """Spans (without the newline) of the lines that may hold a token-shaped secret.

    That is a run of 16+ base64/token characters with a digit or a capital in it: every token
    format has one, while snake_case names, the bulk of long runs in code, do not.
    """
    ascii_only = text.isascii()
    data = text.encode("ascii") if ascii_only else text.encode("utf-8", "surrogatepass")
    mapped = data.translate(_RUN_TABLE)
    needle = b"x" * _RUN_MIN
    spans: list[tuple[int, int]] = []
    i = mapped.find(needle)
    while i >= 0:
        j = mapped.find(b" ", i)
        if j < 0:
            j = len(data)
        if not data[i:j].translate(None, _PLAIN_RUN_CHARS):
            i = mapped.find(needle, j)
            continue
        a = data.rfind(b"\n", 0, i) + 1
        b = data.find(b"\n", j)
        if b < 0:
            b = len(data)
        spans.append((a, b))
        i = mapped.find(needle, b)
    if spans and not ascii_only:  # byte offsets become character offsets
        chars, at, out = 0, 0, []
        for a, b in spans:
            chars += len(data[at:a].decode("utf-8", "surrogatepass"))
            start = chars
            chars += len(data[a:b].decode("utf-8", "surrogatepass"))
            out.append((start, chars))
            at = b
        spans = out
    return spans


def _lines_with(text: str, markers: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of the lines that hold any of ``markers``, in order, without duplicates."""
    found: set[tuple[int, int]] = set()
    for marker in markers:
        i = text.find(marker)
        while i >= 0:
            a = text.rfind("\n", 0, i) + 1
            b = text.find("\n", i)
            if b < 0:
                b = len(text)
            found.add((a, b))
            i = text.find(marker, b)
    return sorted(found)


class _Lines:
    """Some of a text's lines joined by newlines, with a map back to the text's offsets."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.spans = spans
        self.text = "\n".join(text[a:b] for a, b in spans)
        self.starts: list[int] = []
        at = 0
        for a, b in spans:
            self.starts.append(at)
            at += b - a + 1

    def locate(self, pos: int) -> tuple[int, str, int]:
        """For joined offset ``pos``: the text offset, the line that holds it, the column."""
        i = bisect.bisect_right(self.starts, pos) - 1
        a, b = self.spans[i]
        start = self.starts[i]
        return a + pos - start, self.text[start : start + b - a], pos - start


_EXAMPLE_PATH = re.compile(
    r"(?:^|/)(?:tests?|testing|spec|specs|__tests__|fixtures?|testdata|test_data|docs?|examples?)/|"
    r"(?:^|/)test_[^/]*$|_test\.[^/]+$|[._-](?:test|spec)\.[^/]+$|(?:^|/)conftest\.py$|"
    r"\.(?:md|rst|adoc|txt)$",
    re.IGNORECASE,
)
_CONFIG_PATH = re.compile(
    r"\.(?:ya?ml|ini|cfg|conf|properties|toml|env|sh|bash|zsh|tf|tfvars|hcl)$|"
    r"(?:^|/)(?:\.env[^/]*|Dockerfile[^/]*|Makefile|Procfile)$",
    re.IGNORECASE,
)


def is_example_path(path: str) -> bool:
    """Tests, fixtures and documentation: there a short password is a stand-in, not a credential."""
    return bool(_EXAMPLE_PATH.search(path))


# --- the detectors that are not single regexes ----------------------------------------------

_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_TOKEN = re.compile(r"\\[nrt]|[A-Za-z0-9+/=]+")
_PEM_HEADER = re.compile(r"\s*[A-Za-z-]+: \S.*")
_PEM_NOISE = re.compile(r"\\[nrt]|[\s\"'`+,;()\[\]]")
_KEY_LINE = re.compile(r"[A-Za-z0-9+/=]{40,}")


def _private_keys(text: str) -> Iterator[Secret]:
    """PEM/OpenSSH/PGP private key blocks: every body line's key material, as one secret."""
    if "PRIVATE KEY" not in text:
        return
    for begin in _PEM_BEGIN.finditer(text):
        start = begin.end()
        end_match = _PEM_END.search(text, start, start + 32768)
        stop = end_match.start() if end_match else _key_lines_end(text, start)
        segments = _segments(text, start, stop)
        tokens = [
            [t for t in _PEM_TOKEN.finditer(text, a, b) if not t.group().startswith("\\")]
            for a, b in segments
        ]
        if not any(len(t.group()) >= 40 for line in tokens for t in line):
            continue  # "..." in documentation, or already redacted
        plain = all(
            not _PEM_NOISE.sub("", _PEM_TOKEN.sub("", text[a:b])) or _PEM_HEADER.fullmatch(text[a:b])
            for a, b in segments
        )
        spans: list[tuple[int, int]] = []
        for line in tokens:
            if not plain:  # key material amid code: only the unmistakable base64 runs
                spans += [t.span() for t in line if len(t.group()) >= 40]
            elif line:
                spans.append((line[0].start(), line[-1].end()))
        head = text[text.rfind("\n", 0, begin.start()) + 1 : begin.start()]
        kind = "gcp-private-key" if "private_key" in head else "private-key"
        yield Secret(kind, tuple(spans))


def _key_lines_end(text: str, start: int) -> int:
    """Without an END line: the end of the lines that still look like key material."""
    end = text.find("\n", start)
    if end < 0:
        return len(text)
    for _ in range(200):
        nxt = text.find("\n", end + 1)
        if not _KEY_LINE.search(text, end + 1, nxt if nxt >= 0 else len(text)):
            break
        end = nxt if nxt >= 0 else len(text)
        if nxt < 0:
            break
    return end


def _segments(text: str, start: int, stop: int) -> list[tuple[int, int]]:
    out, a = [], start
    while a <= stop:
        b = text.find("\n", a, stop)
        if b < 0:
            out.append((a, stop))
            break
        out.append((a, b))
        a = b + 1
    return out


_DB_SCHEMES = re.compile(
    r"postgres|mysql|mariadb|mongodb|redis|rediss|amqp|mssql|sqlserver|oracle|jdbc|cockroach|"
    r"clickhouse|couchdb|neo4j|cassandra|sqlalchemy|db2|snowflake|memcached|elasticsearch",
    re.IGNORECASE,
)
_URL_CRED = re.compile(
    r"([A-Za-z][A-Za-z0-9+.\-]*)://([^\s:/?#\[\]@\"'`<>{}()]*):([^\s/?#\[\]@\"'`<>]+)@[A-Za-z0-9\[]"
)
_URL_FAKE = frozenset(
    {
        *("pass", "password", "passwd", "pwd", "secret", "changeme", "example", "test", "testing"),
        *("postgres", "root", "admin", "guest", "user", "username", "mysql", "redis", "mongo"),
        *("rabbit", "rabbitmq", "default", "none", "null", "xxx", "foo", "bar", "baz", "hunter2"),
    }
)


def _url_passwords(text: str, example: bool) -> Iterator[Secret]:
    """``scheme://user:PASSWORD@host``: the password only; kind db-password for databases."""
    if "://" not in text or "@" not in text:
        return
    for a, b in _lines_with(text, ("://",)):
        if "@" not in text[a:b]:
            continue
        for m in _URL_CRED.finditer(text, a, b):
            scheme, user, password = m.group(1), m.group(2), m.group(3)
            if password.lower() in _URL_FAKE or password == user or "," in password:
                continue  # "," : a multi-host URL (host1:port,host2), not a password
            if _looks_fake(password) or (example and not _random_looking(password)):
                continue
            kind = "db-password" if _DB_SCHEMES.search(scheme) else "url-password"
            yield Secret(kind, (m.span(3),))


_PASSWORD_NAME = r"(?:passw(?:or)?d|passphrase|pwd)"
_SECRET_NAME = (
    r"(?:(?:api|secret|access|private|priv|auth|client|service|account|master|encryption|signing|"
    r"app|consumer|db|database|session|license|webhook|bot)[_.\-]?key|apikey|secret|token|"
    r"credential|" + _PASSWORD_NAME + r")"
)
# The name may carry a short suffix (passwords, pwd2) but not a long one (password_reset_url).
_PASSWORD_ASSIGN = re.compile(
    r"(?i)" + _PASSWORD_NAME + r"\w{0,2}['\"\]]*\s*(?:=|:=|=>|==|:|\()\s*[rbuf]?"
    r"([\"'`])([^\s\"'`\\]{1,200})\1"
)
_CONFIG_ASSIGN = re.compile(
    r"(?m)^[ \t]*(?:export[ \t]+|ENV[ \t]+)?([\w.\-]+)[ \t]*[:=][ \t]*([^\s\"'#`]{8,300})[ \t\r]*(?:#.*)?$"
)
_SECRET_NAME_RE = re.compile(_SECRET_NAME, re.IGNORECASE)
_PASSWORD_NAME_END = re.compile(_PASSWORD_NAME + r"\w{0,2}$", re.IGNORECASE)


_VALUE_AFTER_NAME = r"([\w.\-]*)['\"\]]*\s*(?:=|:=|=>|==|:|\()\s*[rbuf]?([\"'`])([^\s\"'`\\]{16,300})\2"
# One regex per keyword, each starting with its literal: the engine scans for a literal quickly.
_KEYWORD_VALUES = tuple(
    (keyword, re.compile(keyword + _VALUE_AFTER_NAME))
    for keyword in ("key", "secret", "token", "passw", "pwd", "passphrase", "credential")
)
# Tokens that are cursors, not credentials: NextToken, page_token, ContinuationToken...
_NOT_SECRET_NAME = re.compile(r"next|page|continuation|cursor|marker|output|input|sync|csrf|xsrf")
_KEY_NAME = re.compile(
    r"(?:api|secret|access|private|priv|auth|client|service|account|master|encryption|signing|app|"
    r"consumer|db|database|session|license|webhook|bot)[_.\-]?$"
)


def _assigned(lines: _Lines) -> Iterator[Secret]:
    """Quoted values of 16+ characters assigned to a secret-sounding name, if random-looking."""
    lowered = lines.text.lower()
    if len(lowered) != len(lines.text):  # lowering changed offsets (rare non-ASCII): be exact
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in lines.text)
    for keyword, regex in _KEYWORD_VALUES:
        is_password = keyword in ("passw", "pwd", "passphrase")
        for m in regex.finditer(lowered):
            if keyword == "key" and not (
                _KEY_NAME.search(lowered, max(0, m.start() - 12), m.start())
                or lowered.startswith("apikey", m.start() - 3)
            ):
                continue  # a bare "key" names dictionary keys, not credentials
            if m.group(1).endswith(("id", "ids")):
                continue  # token_id, private_key_id: identifiers (detect-secrets' id heuristic)
            name_start = m.start()
            while name_start > 0 and (lowered[name_start - 1].isalnum() or lowered[name_start - 1] in "_-."):
                name_start -= 1
            if _NOT_SECRET_NAME.search(lowered, name_start, m.start()) or _NOT_SECRET_NAME.search(m.group(1)):
                continue  # NextToken, page_token: pagination cursors
            start, end = m.span(3)
            value = lines.text[start:end]
            if not _random_looking(value):
                continue
            pos, _, _ = lines.locate(start)
            yield Secret("password" if is_password else "high-entropy", ((pos, pos + len(value)),))


def _passwords(text: str, example: bool, config_file: bool) -> Iterator[Secret]:
    """Values assigned to password names: shorter than entropy can judge, so judged by shape."""
    if example:
        return
    lines = _lines_with(text, ("ssw", "SSW"))
    for a, b in lines:
        for m in _PASSWORD_ASSIGN.finditer(text, a, b):
            if _password_like(m.group(2)):
                yield Secret("password", (m.span(2),))
    if config_file:
        for m in _CONFIG_ASSIGN.finditer(text):
            name, value = m.group(1), m.group(2)
            if not _SECRET_NAME_RE.search(name) or name.lower().endswith(("id", "ids")):
                continue
            is_password = _PASSWORD_NAME_END.search(name) is not None
            if _random_looking(value) or (is_password and _password_like(value)):
                yield Secret("password" if is_password else "high-entropy", (m.span(2),))


# --- the redactor ----------------------------------------------------------------------------

_MAX_PASSES = 4


class Redactor:
    """Finds secrets in a file's text and replaces each value with ``[REDACTED:<kind>]``."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules

    def find(self, path: str, text: str) -> list[Secret]:
        """The secrets in ``text``, without overlaps, in order of position."""
        if not text:
            return []
        example = is_example_path(path)
        found: list[Secret] = [*_private_keys(text)]
        spans = _long_run_lines(text)
        if spans:
            lines = _Lines(text, spans)
            found += self._tokens(lines)
            found += _assigned(lines)
        found += _url_passwords(text, example)
        found += _passwords(text, example, bool(_CONFIG_PATH.search(path)))
        return _resolve(text, found)

    def _tokens(self, lines: _Lines) -> Iterator[Secret]:
        joined = lines.text
        present: dict[str, bool] = {}
        for rule in self.rules:
            if not any(present.get(m) or present.setdefault(m, m in joined) for m in rule.markers):
                continue
            if rule.shape is not None and not rule.shape.search(joined):
                continue
            for m in rule.pattern().finditer(joined):
                start, end = m.span(rule.group)
                if start < 0:
                    continue
                while end < len(joined) and joined[end] in rule.extend:
                    end += 1
                glued = start > 0 and joined[start - 1] in ALNUM
                if glued and rule.glued_to:
                    glued = not joined.startswith(rule.glued_to, start - len(rule.glued_to))
                if glued or (end < len(joined) and joined[end] in ALNUM):
                    continue  # part of a longer word: not this format
                value = joined[start:end]
                pos, line, _ = lines.locate(start)
                if "EXAMPLE" in value.upper() or len(set(value)) < 8:
                    continue  # documented examples (AKIAIOSFODNN7EXAMPLE) and xxxx stand-ins
                if rule.check is not None and not rule.check(value, line):
                    continue
                kind = _sk_kind(value) if rule.kind == "openai-key" and value.startswith("sk-") else rule.kind
                yield Secret(kind, ((pos, pos + len(value)),))

    def redact(self, path: str, text: str) -> tuple[str, tuple[str, ...]]:
        """``text`` with every secret's value replaced, and one kind per secret removed."""
        kinds: list[str] = []
        # Where two candidates overlapped, the loser's remainder can look like a secret on its
        # own once the winner is replaced: repeat until nothing is found, so a second call on
        # the result finds nothing either.
        for _ in range(_MAX_PASSES):
            secrets = self.find(path, text)
            if not secrets:
                break
            pieces, at = [], 0
            for a, b, kind in sorted((a, b, s.kind) for s in secrets for a, b in s.spans):
                pieces += [text[at:a], placeholder(kind)]
                at = b
            pieces.append(text[at:])
            text = "".join(pieces)
            kinds += (s.kind for s in secrets)
        return text, tuple(kinds)

    def redact_diff(self, diff: str) -> tuple[str, tuple[str, ...]]:
        """A unified diff (``git diff``) with secrets redacted in its hunks; every +/-/space kept.

        Each file's hunk lines are redacted together without their one-character prefix, under
        the file's path, so added and removed secrets alike are caught and the diff stays valid.
        """
        lines = diff.split("\n")
        kinds: list[str] = []
        block: list[int] = []
        path, in_hunk = "", False

        def flush() -> None:
            if not block:
                return
            text, found = self.redact(path, "\n".join(lines[i][1:] for i in block))
            for i, content in zip(block, text.split("\n"), strict=True):
                lines[i] = lines[i][0] + content
            kinds.extend(found)
            block.clear()

        for i, line in enumerate(lines):
            if line.startswith("diff --git "):
                flush()
                path, in_hunk = "", False
            elif line.startswith("@@"):
                in_hunk = True
            elif in_hunk and line[:1] in (" ", "+", "-"):
                block.append(i)
            elif line.startswith("+++ b/") or (line.startswith("--- a/") and not path):
                path = line[6:]
        flush()
        return "\n".join(lines), tuple(kinds)


def _resolve(text: str, found: list[Secret]) -> list[Secret]:
    """Drop secrets that overlap an earlier (higher-priority) one; spans never hold a newline."""
    taken: list[tuple[int, int]] = []  # sorted, disjoint
    kept: list[Secret] = []
    for secret in found:
        spans = [(a, b) for a, b in secret.spans if b > a and "\n" not in text[a:b]]
        if not spans or any(_overlaps(taken, a, b) for a, b in spans):
            continue
        for a, b in spans:
            bisect.insort(taken, (a, b))
        kept.append(Secret(secret.kind, tuple(spans)))
    kept.sort(key=lambda s: s.spans[0])
    return kept


def _overlaps(taken: list[tuple[int, int]], a: int, b: int) -> bool:
    i = bisect.bisect_left(taken, (a, b))
    return (i > 0 and taken[i - 1][1] > a) or (i < len(taken) and taken[i][0] < b)
