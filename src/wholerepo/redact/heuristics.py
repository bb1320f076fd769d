"""Judging a value: random enough to be a credential, or a word, a template, an example?

Every regex here runs on one value (at most a few hundred characters), never on a whole file.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
from functools import lru_cache

HEX = frozenset(string.hexdigits)


def entropy(value: str) -> float:
    """Shannon entropy in bits per character (detect-secrets' formula over the value's own characters)."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in (value.count(ch) for ch in set(value)))


def classes(value: str) -> int:
    """How many of lower case, upper case and digits ``value`` has."""
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )


def mixed(value: str) -> bool:
    """Letters and digits both: random tokens have them, words and identifiers mostly do not."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


# Words that mark a value as an example, a template or a test stand-in rather than a credential.
_FAKE = re.compile(
    r"example|sample|dummy|placeholder|change[-_]?(?:me|it)|your[-_]?|xxxx|\*\*\*|\.\.\.|<|>|"
    r"fake|mock|test|redacted|secret|passw|token|insert|replace|todo|foobar|"
    r"0123456|1234567|abcdefg|(.)\1{5}",
    re.IGNORECASE,
)
_TEMPLATE = re.compile(r"^[$%{<]|\$\{|\{\{|%\(|%s\b|^\w+\(|^\[REDACTED")
IDENTIFIER = re.compile(
    r"[a-z][a-z0-9]*(?:[_.\-][a-z0-9]+)+|[A-Z][A-Z0-9]*(?:[_.\-][A-Z0-9]+)+|"
    r"[A-Za-z][a-z]+(?:[A-Z][a-z]+)+\d*|[a-z]+(?:[A-Z][a-z]+)+\d*"
)
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Regexes, templates, URLs, dates: text about values, not a value.
NOT_TOKEN = re.compile(r"[\[\]{}<>\\|]|\(\?|://|^\d{4}-\d\d-\d\d")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![A-Za-z])")  # an acronym ends where letters do


@lru_cache(maxsize=4096)  # a file that repeats a value pays for judging it once
def looks_fake(value: str) -> bool:
    """An example, a placeholder or a template: ``changeme``, ``<token>``, ``${TOKEN}``."""
    return bool(_FAKE.search(value) or _TEMPLATE.search(value))


# Four consonants in a row, or a letter three times: random letters, not a word.
_UNPRONOUNCEABLE = re.compile(r"[b-df-hj-np-tv-xz]{4}|(.)\1\1", re.IGNORECASE)
_VOWELS = frozenset("aeiouyAEIOUY")


def _word_like(word: str) -> bool:
    """A run of letters that reads as a word: vowels enough, no unpronounceable cluster.

    Random text has runs of three letters or more everywhere (``aexej``, ``gqtz``); counting
    all of them as words kept three in five random lower-case-and-digit keys.
    """
    if word.isupper() and len(word) <= 5:
        return True  # an acronym: API, URL, HTTP
    vowels = sum(c in _VOWELS for c in word)
    return vowels * 4 >= len(word) and vowels * 4 <= len(word) * 3 and not _UNPRONOUNCEABLE.search(word)


def wordy(value: str) -> bool:
    """Mostly English-looking words (CamelCase, dotted names): random text rarely is.

    The words must cover half the value and be half its pieces (runs of one case or of
    digits): random text breaks into many short pieces, a name into a few words.
    """
    words = [w for w in _WORD.findall(value) if _word_like(w)]
    return sum(len(w) for w in words) * 2 > len(value) and len(words) * 2 >= len(_PIECE.findall(value))


_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def random_looking(value: str) -> bool:
    """High entropy as detect-secrets measures it, with thresholds that spare ordinary code."""
    n = len(value)
    if n < 16 or n > 1000 or (value.isalpha() and n < 32) or value.isdigit():
        return False  # random strings this short almost always hold a digit
    if looks_fake(value) or NOT_TOKEN.search(value) or ":" in value or value.startswith(("/", "./")):
        return False  # ":" marks ARNs, URNs, times and key:value pairs
    if UUID.fullmatch(value) or IDENTIFIER.fullmatch(value) or wordy(value):
        return False
    bits = entropy(value)
    if set(value) <= HEX:  # detect-secrets' hex limit (3.0) on at least 20 hex digits
        return n >= 20 and bits > 3.0
    if not _DIGIT.search(value):
        return bits >= 4.3
    return bits >= min(4.0, math.log2(n) - 0.7)


def password_like(value: str) -> bool:
    """A value assigned to a password name: short is fine, but not a word, template or example."""
    if not 8 <= len(value) <= 200 or looks_fake(value) or NOT_TOKEN.search(value):
        return False
    if IDENTIFIER.fullmatch(value) or value.isalpha() or value.isdigit():
        return False
    symbols = any(not c.isalnum() for c in value)
    return classes(value) + symbols >= 2 and len(set(value)) >= 6


def credential_like(value: str) -> bool:
    """A value under a credential's name where the name says enough (a URL's ``?token=``).

    Shorter than entropy can judge, so judged by shape: 12+ characters of two kinds or more
    that read neither as words nor as an identifier.
    """
    if random_looking(value):
        return True
    if not 12 <= len(value) <= 500 or looks_fake(value) or NOT_TOKEN.search(value):
        return False
    if IDENTIFIER.fullmatch(value) or wordy(value) or UUID.fullmatch(value):
        return False
    return classes(value) >= 2 and len(set(value)) >= 8


def decode_base64(value: str) -> str | None:
    """``value`` decoded as (standard or URL-safe) base64 into printable text, or None."""
    bare = value.rstrip("=")
    padded = bare + "=" * (-len(bare) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.isprintable() else None


def basic_credentials(value: str) -> bool:
    """HTTP Basic credentials: base64 of ``user:password``, with a password that is not a stand-in."""
    decoded = decode_base64(value)
    if decoded is None or ":" not in decoded:
        return False
    user, _, password = decoded.partition(":")
    return bool(user) and bool(password) and not looks_fake(password) and password.lower() not in _STAND_INS


# Passwords that documentation and examples use: never a live credential worth hiding.
_STAND_INS = frozenset(
    {
        *("pass", "password", "passwd", "pwd", "secret", "changeme", "example", "test", "testing"),
        *("postgres", "root", "admin", "guest", "user", "username", "mysql", "redis", "mongo"),
        *("rabbit", "rabbitmq", "default", "none", "null", "xxx", "foo", "bar", "baz", "hunter2"),
        *("open sesame",),
    }
)


def stand_in(value: str) -> bool:
    """A password documentation uses (``guest``, ``postgres``, ``hunter2``...)."""
    return value.lower() in _STAND_INS
