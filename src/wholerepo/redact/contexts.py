"""Detectors that read context: key blocks, URLs, assignments, markup and Kubernetes manifests.

Each finds values by what surrounds them rather than by their own format. Like the token rules
they are linear in the text's length: bounded quantifiers, a start tried only where an earlier
try could not have read on, and a name scanned once (``(?=(...))\\1`` reads it without giving
back, as an atomic group would).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from functools import lru_cache

from .heuristics import (
    credential_like,
    looks_fake,
    password_like,
    random_looking,
    stand_in,
)
from .text import Lines, Secret, lines_with, lowered

# --- private keys ----------------------------------------------------------------------------

_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]{1,20} ){0,6})PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,6}PRIVATE KEY(?: BLOCK)?-----")
_PEM_TOKEN = re.compile(r"\\[nrt]|[A-Za-z0-9+/=]+")
_PEM_HEADER = re.compile(r"\s*[A-Za-z-]+: \S.*")
_PEM_NOISE = re.compile(r"\\[nrt]|[\s\"'`+,;()\[\]]")
_KEY_LINE = re.compile(r"[A-Za-z0-9+/=]{40,}")
_PEM_REACH = 32768  # how far a block's END line may be from its BEGIN line


def private_keys(text: str) -> Iterator[Secret]:
    """PEM/OpenSSH/PGP private key blocks: every body line's key material, as one secret."""
    if "PRIVATE KEY" not in text:
        return
    ends = [m.start() for m in _PEM_END.finditer(text)]
    done = 0  # blocks do not nest: a BEGIN inside the last block read is part of it
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < done:
            continue
        start = begin.end()
        i = bisect.bisect_left(ends, start)
        near_end = i < len(ends) and ends[i] <= start + _PEM_REACH
        stop = ends[i] if near_end else _key_lines_end(text, start)
        done = stop
        if not _KEY_LINE.search(text, start, stop):
            continue  # "..." in documentation, or already redacted: no run of key material
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


_PUTTY_PRIVATE = re.compile(r"Private-Lines: {0,4}(\d{1,3})[ \t]{0,8}\r?\n")
_BASE64_LINE = re.compile(r"[ \t]{0,16}([A-Za-z0-9+/]{1,200}={0,2})[ \t]{0,16}\r?")


def putty_keys(text: str) -> Iterator[Secret]:
    """A PuTTY key file's private part: the base64 lines its "Private-Lines: N" header counts."""
    if "PuTTY-User-Key-File-" not in text:
        return
    for m in _PUTTY_PRIVATE.finditer(text):
        spans: list[tuple[int, int]] = []
        pos = m.end()
        for _ in range(int(m.group(1))):
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            line = _BASE64_LINE.fullmatch(text, pos, end)
            if line is None:
                break
            spans.append(line.span(1))
            pos = end + 1
        if spans:
            yield Secret("private-key", tuple(spans))


# --- URLs ------------------------------------------------------------------------------------

_DB_SCHEMES = re.compile(
    r"postgres|mysql|mariadb|mongodb|redis|rediss|amqp|mssql|sqlserver|oracle|jdbc|cockroach|"
    r"clickhouse|couchdb|neo4j|cassandra|sqlalchemy|db2|snowflake|memcached|elasticsearch",
    re.IGNORECASE,
)
# scheme://USERINFO@host, USERINFO running to the authority's last "@" (a password may hold "@").
_URL_CRED = re.compile(
    r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]{0,30})://([^\s/?\[\]\"'`<>]{1,500})@(?=[A-Za-z0-9\[])"
)


_NOT_IN_USER = frozenset("{}()@")  # a template's braces, or an "@" that ends the user


def url_passwords(text: str, example: bool) -> Iterator[Secret]:
    """``scheme://user:PASSWORD@host``: the password only; kind db-password for databases."""
    if "://" not in text or "@" not in text:
        return
    for a, b in lines_with(text, ("://",)):
        if "@" not in text[a:b]:
            continue
        for m in _URL_CRED.finditer(text, a, b):
            userinfo = m.group(2)
            colon = userinfo.find(":")
            if colon < 0 or colon == len(userinfo) - 1:
                continue
            user, password = userinfo[:colon], userinfo[colon + 1 :]
            if not _NOT_IN_USER.isdisjoint(user) or password == user or "," in password:
                continue  # "," : a multi-host URL (host1:port,host2), not a password
            if stand_in(password) or looks_fake(password) or (example and not random_looking(password)):
                continue
            if password.isdigit() and len(password) <= 5:
                continue  # host:port@ in a malformed URL, not a password
            yield Secret(_url_kind(m.group(1)), ((m.start(2) + colon + 1, m.end(2)),))


@lru_cache(maxsize=256)
def _url_kind(scheme: str) -> str:
    return "db-password" if _DB_SCHEMES.search(scheme) else "url-password"


# A query (or fragment, or connection string) parameter: ?name=VALUE, &name=VALUE, ;name=VALUE.
# The value stops at the next parameter's separator, so tries never overlap.
# In a URL a "#" starts the fragment; in a connection string (";" separated) it is part of the
# value. "=" may only end a value (base64 padding), so that no try reads into the next one.
_PARAMETER = re.compile(r"([?&#;])([A-Za-z][\w.\-]{0,40})=([^?&;\s\"'`<>\\=]{1,500}={0,2})")
_PARAMETER_NAME = re.compile(
    r"key|(?:[\w.\-]{0,40}[_.\-])?(?:api[_\-]?key|apikey|(?:access|secret|private|client|app|auth)[_\-]?key|"
    r"(?:access|auth|refresh|id|session|private|api|bearer|client)?[_\-]?token|"
    r"(?:client[_\-]?)?secret|passw(?:or)?d|pwd|pass|passphrase|signature|sig|credentials?|auth)",
    re.IGNORECASE,
)
_PARAMETER_MARKERS = ("key=", "token=", "secret=", "pass", "pwd=", "sig", "auth=", "credential")
_PASSWORD_NAME = r"(?:passw(?:or)?d|passphrase|pwd)"
_PASSWORD_WORD = re.compile(_PASSWORD_NAME + r"|(?:^|[_.\-])pass$", re.IGNORECASE)
_NAME_WORD = re.compile(r"[A-Z]{1,100}(?![a-z])|[A-Z]?[a-z]{1,100}|\d{1,100}")
# A name with one of these words is about a secret, not one: cursors (NextToken, page_token),
# CSRF tokens, public keys, inputs and outputs, resets.
_NOT_SECRET_WORDS = frozenset(
    {
        "next",
        "page",
        "pagination",
        "paging",
        "continuation",
        "cursor",
        "marker",
        "resume",
        "offset",
        "prev",
        "previous",
        "csrf",
        "xsrf",
        "public",
        "sync",
        "input",
        "output",
        "reset",
        "forgot",
    }
)
# ...or that ends in one of these: what it names is a property of the secret (token_hash,
# secret_name, key_id, password_min_length, token_endpoint, api_key_header).
_NOT_SECRET_LAST_WORDS = frozenset(
    {
        "id",
        "ids",
        "hash",
        "hashed",
        "digest",
        "checksum",
        "fingerprint",
        "arn",
        "name",
        "names",
        "type",
        "types",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "dir",
        "length",
        "len",
        "size",
        "count",
        "format",
        "field",
        "fields",
        "header",
        "headers",
        "ttl",
        "hint",
        "policy",
        "min",
        "max",
        "expiry",
        "expires",
        "expiration",
        "prefix",
        "suffix",
        "version",
        "label",
        "description",
        "env",
        "var",
        "variable",
        "ref",
        "template",
    }
)


def not_a_secret_name(name: str) -> bool:
    """``NextToken``, ``page_token``, ``secret_name``, ``token_hash``, ``key_id``: not credentials."""
    words = [w.lower() for w in _NAME_WORD.findall(name)]
    if not words:
        return False
    return words[-1] in _NOT_SECRET_LAST_WORDS or not _NOT_SECRET_WORDS.isdisjoint(words)


def url_parameters(lines: Lines, example: bool, low: str | None = None) -> Iterator[Secret]:
    """Credentials passed as parameters: ``?api_key=``, ``&token=``, ``#access_token=``, ``;Password=``.

    Looked for on the lines that can hold a token: the name, its "=" and a value worth hiding
    make a run of 16+ token characters. (Short passwords: ``passwords`` finds them.)
    """
    text = lines.text
    low = lowered(text) if low is None else low
    if not any(marker in low for marker in _PARAMETER_MARKERS):
        return
    for m in _PARAMETER.finditer(text):
        name, value = m.group(2), m.group(3)
        is_password = _PASSWORD_WORD.search(name) is not None
        if m.group(1) != ";" and not is_password:  # a password may hold a "#"; a token does not
            value = value.split("#", 1)[0]
        if not value:
            continue
        if not _PARAMETER_NAME.fullmatch(name) or not_a_secret_name(name):
            continue  # client_id, page_token: identifiers and cursors
        if is_password:
            if example or stand_in(value) or not password_like(value):
                continue
            kind = "password"
        elif random_looking(value) or (not example and credential_like(value)):
            kind = "url-credential"
        else:
            continue
        pos, _, _ = lines.locate(m.start(3))
        yield Secret(kind, ((pos, pos + len(value)),))


# --- values assigned to secret-sounding names --------------------------------------------------

_SECRET_NAME = (
    r"(?:(?:api|secret|access|private|priv|auth|client|service|account|master|encryption|signing|"
    r"app|consumer|db|database|session|license|webhook|bot)[_.\-]?key|apikey|secret|token|"
    r"credential|" + _PASSWORD_NAME + r"|(?:^|[_.\-])pass$)"
)
SECRET_NAME = re.compile(_SECRET_NAME, re.IGNORECASE)
_PASSWORD_NAME_END = re.compile(_PASSWORD_NAME + r"\w{0,2}$|(?:^|[_.\-])pass$", re.IGNORECASE)
# After a name: its closing quotes or bracket (JSON inside a notebook escapes them: \"), then
# an assignment, a comparison, a call's "(" or, after a quoted name, a call's "," (setenv,
# define, setProperty), then the quoted value.
# A declared type may come between the name and the "=": ``API_TOKEN: &str = "..."`` (Rust),
# ``apiKey: string = "..."`` (TypeScript), ``api_key: Final[str] = "..."``, Go's
# ``var apiKey string = "..."``.
_TYPE = (
    r"(?:[ \t]{0,4}:[ \t]{0,4}&?(?:'static[ \t]{1,4})?[A-Za-z_][\w.\[\]<>?]{0,40}(?=[ \t]{0,4}=[^=>])"
    r"|[ \t]{1,4}string(?=[ \t]{0,4}=))?"
)
_ASSIGN = r"(?:\\?['\"\]]){0,4}" + _TYPE + r"(?:\s{0,8}(?:=|:=|=>|==|:|\()|(?<=['\"])\s{0,8},)\s{0,8}[rbuf]?"
# One regex per keyword, each starting with its literal: the engine scans for a literal quickly.
# Groups: 1 the rest of the name, 2 the quote, 3 the value.
_KEYWORD_VALUES = tuple(
    (
        keyword,
        re.compile(keyword + r"(?=([\w.\-]{0,40}))\1" + _ASSIGN + r"\\?([\"'`])([^\s\"'`\\]{16,300})\\?\2"),
    )
    for keyword in ("key", "secret", "token", "passw", "pwd", "passphrase", "credential")
)
_KEY_NAME = re.compile(
    r"(?:api|secret|access|private|priv|auth|client|service|account|master|encryption|signing|app|"
    r"consumer|db|database|session|license|webhook|bot)[_.\-]?$"
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _name_start(low: str, at: int, reach: int = 80) -> int:
    """Where the name that ``at`` is inside of begins (at most ``reach`` characters back)."""
    start = at
    while start > max(0, at - reach) and low[start - 1] in _NAME_CHARS:
        start -= 1
    return start


def assigned(lines: Lines, example: bool = False) -> Iterator[Secret]:
    """Quoted values of 16+ characters assigned to a secret-sounding name, if random-looking.

    Outside tests and documentation the name says enough for a value of credential shape
    (``credential_like``): entropy alone kept one random lower-case key in fifty.
    """
    low = lowered(lines.text)
    # Judged once per distinct name and value: a generated file repeats them by the thousand.
    plain_name: dict[str, bool] = {}
    secret_value: dict[tuple[str, bool], bool] = {}
    for keyword, regex in _KEYWORD_VALUES:
        is_password = keyword in ("passw", "pwd", "passphrase")
        for m in regex.finditer(low):
            if keyword == "key" and not (
                _KEY_NAME.search(low, max(0, m.start() - 12), m.start())
                or low.startswith("apikey", m.start() - 3)
            ):
                continue  # a bare "key" names dictionary keys, not credentials
            name = lines.text[_name_start(low, m.start()) : m.end(1)]
            if name not in plain_name:
                plain_name[name] = not_a_secret_name(name)
            if plain_name[name]:
                continue  # token_id, NextToken, page_token: identifiers and cursors
            start, end = m.span(3)
            value = lines.text[start:end]
            # After a quoted name and a "," the name may be a list's item, not a setter's.
            named = not example and "," not in low[m.end(1) : m.start(2)]
            if (value, named) not in secret_value:
                secret_value[value, named] = random_looking(value) or (named and credential_like(value))
            if not secret_value[value, named]:
                continue
            pos, _, _ = lines.locate(start)
            yield Secret("password" if is_password else "high-entropy", ((pos, pos + len(value)),))


# The name may carry a short suffix (passwords, pwd2) but not a long one (password_reset_url).
_PASSWORD_ASSIGN = re.compile(
    r"(?i)" + _PASSWORD_NAME + r"\w{0,2}" + _ASSIGN + r"\\?([\"'`])([^\s\"'`\\]{1,200})\\?\1"
)
# Unquoted, inside a string or a command line: "Server=db;Password=VALUE;", putenv("PWD=VALUE"),
# --password=VALUE, "host:6380,password=VALUE,ssl=True", or after a colon and a space in a
# comment or a message ("# prod password: VALUE"; a type, password: string, is a word, and
# a value after a colon starts with a letter or a digit, not reST's ":type password: :class:").
# The value ends at a quote, ";", "&",
# a backslash (an escaped newline), a closing "}" or "]" (YAML's {user: u, password: VALUE})
# or the line's end, or at "," in a list that "," separates;
# a ")" after it, or a "," after a name that follows a space, is code: f(x, password=value).
_PASSWORD_INLINE = re.compile(
    r"(?i)"
    + _PASSWORD_NAME
    + r"\w{0,2}(?:[ \t]{0,4}=[ \t]{0,4}|:[ \t]{1,4}(?=[A-Za-z0-9]))"
    + r"(?=([^\s\"'`;&<>,()\\=\[\]{}]{1,200}={0,2}))\1(?=[\s\"'`;&\\,}\]]|\Z)"
)
_INLINE_BEFORE = frozenset(" \t;\"'`?&=")
# SQL: CREATE USER ... PASSWORD 'VALUE', ALTER USER ... IDENTIFIED BY 'VALUE'
_SQL_PASSWORD = re.compile(r"(?i)(?:password|identified[ \t]{1,4}by)[ \t]{1,4}(['\"])([^\s'\"\\]{1,200})\1")
# A netrc entry anywhere (a script writing ~/.netrc): machine HOST login USER password VALUE
_NETRC_PASSWORD = re.compile(
    r"machine[ \t]{1,8}\S{1,200}[ \t]{1,8}login[ \t]{1,8}\S{1,200}[ \t]{1,8}"
    r"password[ \t]{1,8}([^\s\"'`]{1,200})"
)
# PowerShell: ConvertTo-SecureString "VALUE" -AsPlainText (-String "VALUE" too)
_SECURE_STRING = re.compile(
    r"(?i)convertto-securestring[ \t]{1,4}(?:-string[ \t]{1,4})?(['\"])([^\s'\"`]{1,200})\1"
)
# name = value, name: value, export NAME=value, ENV NAME=value, - NAME=value (a compose list);
# a "#" starts a comment only after white space (a password may hold one).
_CONFIG_ASSIGN = re.compile(
    r"(?m)^[ \t]{0,32}(?:-[ \t]{1,8})?(?:export[ \t]{1,8}|ENV[ \t]{1,8})?([\w.\-]{1,100})[ \t]{0,16}[:=]"
    r"[ \t]{0,16}([\"']?)([^\s\"'`]{8,300})\2[ \t\r]{0,16}(?:#.*)?$"
)
_PASSWORD_MARKERS = ("ssw", "SSW", "Ssw", "pwd", "PWD", "Pwd", "phrase", "PHRASE")
# "pass" alone, or as a name's last word (smtp_pass, ansible_ssh_pass), quoted or not, given a
# quoted value: {"user": "u", "pass": "VALUE"}, auth: { pass: 'VALUE' }.
_PASS_ASSIGN = re.compile(
    r"(?i)(?<![\w.\-])(?:[a-z0-9]{1,30}[_.\-]){0,4}pass" + _ASSIGN + r"\\?([\"'`])([^\s\"'`\\]{1,200})\\?\1"
)


def passwords(text: str, low: str, example: bool, config_file: bool) -> Iterator[Secret]:
    """Values assigned to password names: shorter than entropy can judge, so judged by shape."""
    if example:
        return
    lines = lines_with(text, _PASSWORD_MARKERS)
    for a, b in lines:
        for m in _PASSWORD_ASSIGN.finditer(text, a, b):
            if password_like(m.group(2)):
                yield Secret("password", (m.span(2),))
        for m in _SQL_PASSWORD.finditer(text, a, b):
            if password_like(m.group(2)) and not stand_in(m.group(2)):
                yield Secret("password", (m.span(2),))
        for m in _PASSWORD_INLINE.finditer(text, a, b):
            start = _inline_start(text, m.start())
            before = text[start - 1] if start > a else ""
            if before and before not in _INLINE_BEFORE and before != ",":
                continue
            if text[m.end(1) : m.end(1) + 1] == "," and before != ",":
                continue  # f(password=value, ...) is code; host:6380,password=value,ssl=True is not
            value = m.group(1)
            if password_like(value) and not stand_in(value):
                yield Secret("password", (m.span(1),))
    if "IDENTIFIED" in text or "identified" in text:
        for a, b in lines_with(text, ("IDENTIFIED", "identified")):
            for m in _SQL_PASSWORD.finditer(text, a, b):
                if password_like(m.group(2)) and not stand_in(m.group(2)):
                    yield Secret("password", (m.span(2),))
    for a, b in lines_with(low, ("pass",)):
        for m in _PASS_ASSIGN.finditer(text, a, b):
            if password_like(m.group(2)) and not stand_in(m.group(2)):
                yield Secret("password", (m.span(2),))
    for a, b in lines_with(text, ("ConvertTo-SecureString", "convertto-securestring")):
        for m in _SECURE_STRING.finditer(text, a, b):
            if password_like(m.group(2)) or random_looking(m.group(2)):
                yield Secret("password", (m.span(2),))
    for a, b in lines_with(text, ("machine ",)):
        for m in _NETRC_PASSWORD.finditer(text, a, b):
            if password_like(m.group(1)) and not stand_in(m.group(1)):
                yield Secret("password", (m.span(1),))
    yield from _name_value_pairs(text, example)
    if config_file:
        for m in _CONFIG_ASSIGN.finditer(text):
            name, value = m.group(1), m.group(3)
            if not SECRET_NAME.search(name) or not_a_secret_name(name):
                continue
            is_password = _PASSWORD_NAME_END.search(name) is not None
            if random_looking(value) or (is_password and password_like(value)):
                yield Secret("password" if is_password else "high-entropy", (m.span(3),))


# Kubernetes env lists, and the like: "- name: DB_PASSWORD" with "value: VALUE" on the next line.
_NAME_THEN_VALUE = re.compile(
    r"[ \t]{0,64}-?[ \t]{0,8}name:[ \t]{0,8}[\"']?([\w.\-]{1,100})[\"']?[ \t]{0,8}\r?\n"
    r"[ \t]{0,64}value:[ \t]{0,8}([\"']?)([^\s\"']{1,300})\2[ \t]{0,8}\r?"
)


def _name_value_pairs(text: str, example: bool) -> Iterator[Secret]:
    """Each line holding "value:" is matched with the line before it, once."""
    for a, b in lines_with(text, ("value:",)):
        if a == 0:
            continue
        m = _NAME_THEN_VALUE.fullmatch(text, text.rfind("\n", 0, a - 1) + 1, b)
        if m is not None:
            kind = _named_value(m.group(1), m.group(3), example)
            if kind is not None:
                yield Secret(kind, (m.span(3),))


def _inline_start(text: str, at: int) -> int:
    start = at
    while start > max(0, at - 40) and (text[start - 1].isalnum() or text[start - 1] in "_-."):
        start -= 1
    return start


# --- markup ----------------------------------------------------------------------------------

# <password>VALUE</password>, <ns:apiKey attr="...">VALUE</ns:apiKey>: a try starts at each "<",
# and neither the attributes nor the value read past the next "<".
_ELEMENT = re.compile(r"<([A-Za-z_][\w.:\-]{0,80})(\s[^<>]{0,300})?>([^<>\n]{1,500})</\1\s{0,4}>")
# <password><![CDATA[VALUE]]></password>, found from each "<![CDATA[" with bounded searches (no
# regex reads the value, so a failed try costs one scan of at most 500 characters).
_OPEN_TAG = re.compile(r"<([A-Za-z_][\w.:\-]{0,80})(\s[^<>]{0,300})?>")
_CLOSE_END = re.compile(r"\s{0,4}>")
_CDATA = "<![CDATA["
# <entry key="db.password">VALUE</entry>: the element's own name says nothing, its key does.
_NAMING_ATTRIBUTE = re.compile(r"\s(?:key|name)\s{0,4}=\s{0,4}[\"']([\w.:\-]{1,100})[\"']", re.IGNORECASE)
# <add key="Password" value="VALUE"/>, <property name="db.password" value="VALUE"/>
_KEY_VALUE_TAG = re.compile(
    r"<(?:add|property|setting|param|entry|parameter)\s([^<>]{1,600})>", re.IGNORECASE
)
_ATTRIBUTE = re.compile(r"([\w.:\-]{1,50})\s{0,4}=\s{0,4}\"([^\"]{0,500})\"")
_MAVEN_ENCRYPTED = re.compile(r"\{[A-Za-z0-9+/=]{8,500}\}")


def _named_value(name: str, value: str, example: bool) -> str | None:
    """The kind of secret ``value`` is under ``name``, or None."""
    if not SECRET_NAME.search(name) or not_a_secret_name(name):
        return None
    if _PASSWORD_WORD.search(name):
        if example:
            return None
        if _MAVEN_ENCRYPTED.fullmatch(value) or (password_like(value) and not stand_in(value)):
            return "password"
        return None
    if random_looking(value) or (not example and credential_like(value)):
        return "high-entropy"
    return None


def markup(text: str, example: bool) -> Iterator[Secret]:
    """Secrets in XML: element text under a secret's name, and key/value attribute pairs."""
    if "<" not in text:
        return
    for m in _ELEMENT.finditer(text):
        name = m.group(1).rsplit(":", 1)[-1]
        named = _NAMING_ATTRIBUTE.search(m.group(2) or "")
        raw = m.group(3)
        value = raw.strip()
        kind = _named_value(name, value, example) if value else None
        if kind is None and named is not None and value:
            kind = _named_value(named.group(1), value, example)
        if kind is not None:
            start = m.start(3) + raw.index(value)
            yield Secret(kind, ((start, start + len(value)),))
    for name, start, end in _cdata_values(text):
        kind = _named_value(name.rsplit(":", 1)[-1], text[start:end], example)
        if kind is not None:
            yield Secret(kind, ((start, end),))
    for m in _KEY_VALUE_TAG.finditer(text):
        attributes = {k.lower(): (v, s) for k, v, s in _attributes(m)}
        name = (attributes.get("key") or attributes.get("name") or ("", 0))[0]
        if "value" not in attributes or not name:
            continue
        value, start = attributes["value"]
        kind = _named_value(name, value, example) if value else None
        if kind is not None:
            yield Secret(kind, ((start, start + len(value)),))


def _cdata_values(text: str) -> Iterator[tuple[str, int, int]]:
    """(element name, value start, value end) of each ``<name ...><![CDATA[value]]></name>``."""
    at = text.find(_CDATA)
    while at != -1:
        start = at + len(_CDATA)
        end = text.find("]]>", start, start + 503)
        if end > start and "\n" not in text[start:end]:
            lt = text.rfind("<", max(0, at - 400), at)
            tag = _OPEN_TAG.fullmatch(text, lt, at) if lt != -1 else None
            close = end + 3 + 2 + len(tag.group(1)) if tag else -1
            if (
                tag is not None
                and text.startswith("</" + tag.group(1), end + 3)
                and _CLOSE_END.match(text, close)
            ):
                yield tag.group(1), start, end
        at = text.find(_CDATA, start)


def _attributes(tag: re.Match[str]) -> Iterator[tuple[str, str, int]]:
    for m in _ATTRIBUTE.finditer(tag.string, tag.start(1), tag.end(1)):
        yield m.group(1), m.group(2), m.start(2)


# --- command lines ---------------------------------------------------------------------------

_CURL_USER = re.compile(r"(?<![\w-])(?:-u|--user)(?:[ \t]{1,4}|=)[\"']?([^\s:\"']{1,100}):([^\s\"']{1,200})")


def curl_users(text: str, example: bool) -> Iterator[Secret]:
    """``curl -u user:PASSWORD``: the password only."""
    if example or "curl" not in text:
        return
    for a, b in lines_with(text, ("curl",)):
        for m in _CURL_USER.finditer(text, a, b):
            password = m.group(2)
            if not stand_in(password) and (password_like(password) or random_looking(password)):
                yield Secret("password", (m.span(2),))


# Password options of command lines: --password VALUE (a space, not "="), mysql's -pVALUE,
# sshpass -p VALUE, docker/podman/helm login -p VALUE. A value is read once, from its option.
_OPTION_VALUE = r"(?P<q>['\"]?)([^\s'\"`;|&<>()$-][^\s'\"`;|&<>()]{0,199})(?P=q)(?![^\s;|&)])"
_PASSWORD_OPTION = re.compile(
    r"(?i)(?<![\w-])--(?:[a-z]{1,20}-)?(?:password|passwd|pass)[ \t]{1,4}" + _OPTION_VALUE
)
# --api-key VALUE, --token=VALUE, --client-secret VALUE: judged as values of credential names.
_TOKEN_OPTION = re.compile(
    r"(?i)(?<![\w-])--((?:[a-z]{1,20}-){0,3}(?:api-?key|token|secret|secret-key|access-key|auth-token|credentials?))"
    r"(?:[ \t]{1,4}|=)" + _OPTION_VALUE
)
# openssl's -passin/-passout/-password pass:VALUE
_OPENSSL_PASS = re.compile(r"(?i)(?<![\w-])-pass(?:in|out|word)?[ \t]{1,4}pass:([^\s'\"`;|&<>()]{1,200})")
_SPACED_A = re.compile(r"(?<![\w-])-a[ \t]{1,4}" + _OPTION_VALUE)  # redis-cli -a VALUE
_ATTACHED_P = re.compile(r"(?<![\w-])-p" + _OPTION_VALUE)  # mysql: "-p shop" asks, "shop" is the database
_SPACED_P = re.compile(r"(?<![\w-])-p[ \t]{0,4}" + _OPTION_VALUE)
_COMMAND = re.compile(
    r"(?<![\w-])(?:(mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)|(redis-cli)|sshpass|login)(?![\w-])"
)
# In lower case: --password, --db-password, -passout pass:; --api-key, --secret-key; --token...
_COMMAND_MARKERS = (
    *("-pass", "-key", "apikey", "-token", "-secret", "-credential"),
    *("mysql", "mariadb", "sshpass", " login", "redis-cli"),
)


def command_passwords(text: str, low: str, example: bool) -> Iterator[Secret]:
    """Secrets given to a command as options: ``--password V``, ``mysql -pV``, ``--api-key V``."""
    if example:
        return
    for a, b in lines_with(low, _COMMAND_MARKERS):
        found = list(_PASSWORD_OPTION.finditer(text, a, b))
        command = _COMMAND.search(text, a, b)
        if command is not None:
            regex = _ATTACHED_P if command.group(1) else _SPACED_A if command.group(2) else _SPACED_P
            found += regex.finditer(text, command.end(), b)
        for m in found:
            value = m.group(2)
            if not stand_in(value) and (password_like(value) or random_looking(value)):
                yield Secret("password", (m.span(2),))
        for m in _OPENSSL_PASS.finditer(text, a, b):
            if not stand_in(m.group(1)) and password_like(m.group(1)):
                yield Secret("password", (m.span(1),))
        for m in _TOKEN_OPTION.finditer(text, a, b):
            value = m.group(3)
            if not not_a_secret_name(m.group(1)) and (random_looking(value) or credential_like(value)):
                yield Secret("high-entropy", (m.span(3),))


# NAME=VALUE inside a command line or a string, for a secret's name that is not a password's:
# docker build --build-arg API_KEY=VALUE, kubectl ... --from-literal=api-key=VALUE,
# heroku config:set SECRET_KEY=VALUE. (Passwords: _PASSWORD_INLINE; ?name=: url_parameters.)
_TOKEN_INLINE = re.compile(
    r"(?i)(?<![\w.\-])((?:[a-z0-9]{1,30}[_.\-]){0,4}(?:api[_.\-]?key|apikey|secret(?:[_.\-]?key)?|token|"
    r"access[_.\-]?key|client[_.\-]?secret|private[_.\-]?key|credentials?))"
    r"=(?=([^\s\"'`;&<>,()\\=]{12,500}={0,2}))\2(?=[\s\"'`;&\\,)]|\Z)"
)
_TOKEN_INLINE_MARKERS = ("key=", "secret=", "token=", "credential=", "credentials=")  # lower case


def inline_tokens(text: str, low: str, example: bool) -> Iterator[Secret]:
    """``NAME=VALUE`` in a command line or a string, where NAME says API key, secret or token."""
    for a, b in lines_with(low, _TOKEN_INLINE_MARKERS):
        for m in _TOKEN_INLINE.finditer(text, a, b):
            if not_a_secret_name(m.group(1)):
                continue
            value = m.group(2)
            if random_looking(value) or (not example and credential_like(value)):
                yield Secret("high-entropy", (m.span(2),))


# Defaults of environment lookups: ${DB_PASSWORD:-VALUE} (shells, compose), ${db.password:VALUE}
# (Spring), process.env.API_TOKEN || "VALUE", ENV["API_TOKEN"] || "VALUE", getenv("X") or "VALUE".
_SHELL_DEFAULT = re.compile(r"\$\{([A-Za-z_][\w.]{0,100})(?::-|:=|:|-)([^{}\s\"'`$]{1,300})\}")
_ENV_DEFAULT = re.compile(
    r"(?:process\.env\.|import\.meta\.env\.|ENV\[[\"']|environ(?:\.get)?\([\"']|getenv\([\"'])([A-Za-z_]\w{0,100})"
    r"(?:[\"']\]|[\"']\)|\)|\]){0,1}[ \t]{0,4}(?:\|\||\?\?|or)[ \t]{0,4}([\"'`])([^\s\"'`\\]{1,300})\2"
)


def env_defaults(text: str, low: str, example: bool) -> Iterator[Secret]:
    """The value an environment lookup falls back to, under a secret's name: a secret all the same."""
    for a, b in lines_with(text, ("${",)):
        for m in _SHELL_DEFAULT.finditer(text, a, b):
            kind = _named_value(m.group(1), m.group(2), example)
            if kind is not None:
                yield Secret(kind, (m.span(2),))
    for a, b in lines_with(low, ("env",)):  # process.env, import.meta.env, ENV[, environ, getenv
        for m in _ENV_DEFAULT.finditer(text, a, b):
            kind = _named_value(m.group(1), m.group(3), example)
            if kind is not None:
                yield Secret(kind, (m.span(3),))


# HTTP headers written out: "X-Auth-Token: VALUE", "Private-Token: VALUE", "api-key: VALUE",
# GitHub's "Authorization: token VALUE" (in a curl -H, a .http file, a test of a proxy). The
# name has a dash or a scheme word: a YAML key has its own reader.
_HEADER = re.compile(
    r"(?i)(?<![\w-])((?:[a-z0-9]{1,20}-){1,4}(?:api-?key|key|token|secret|auth|signature)|private-token|api-key"
    r"|authorization(?=[ \t]{0,4}:[ \t]{1,4}token[ \t]))"
    r"[ \t]{0,4}:[ \t]{1,4}(?:token[ \t]{1,4})?([A-Za-z0-9+/_.~-]{12,500}={0,2})(?![^\s\"'`\\,;])"
)
_HEADER_MARKERS = (
    "-token:",
    "-key:",
    "-secret:",
    "-auth:",
    "-signature:",
    "api-key:",
    ": token ",
)  # lower case


def headers(text: str, low: str, example: bool) -> Iterator[Secret]:
    """Values of HTTP headers named like a credential, written as ``Name: VALUE``."""
    for a, b in lines_with(low, _HEADER_MARKERS):
        for m in _HEADER.finditer(text, a, b):
            if not_a_secret_name(m.group(1)):
                continue  # X-CSRF-Token, X-Request-Id
            value = m.group(2)
            if random_looking(value) or (not example and credential_like(value)):
                yield Secret("high-entropy", (m.span(2),))


# --- Kubernetes Secrets ------------------------------------------------------------------------

_K8S_KIND = re.compile(
    r"(?m)^[ \t]{0,64}[\"']?kind[\"']?[ \t]{0,8}:[ \t]{0,8}[\"']?Secret[\"']?[ \t]{0,8}(?:#[^\n]{0,500})?\r?$"
)
_K8S_DATA = re.compile(r"(?m)^([ \t]{0,64})(?:data|stringData):[ \t]{0,8}(?:#[^\n]{0,500})?\r?$")
_YAML_ENTRY = re.compile(r"[ \t]*([\w.\-]{1,253})[ \t]*:[ \t]*(.*?)[ \t]*\r?$")
_BLOCK = re.compile(r"[|>][-+]?\d?")
_ANY_KIND = re.compile(r"kind[\"']?[ \t]{0,8}:[ \t]{0,8}[\"']?Secret(?![\w-])")
_JSON_KIND = re.compile(r"\"kind\"\s{0,8}:\s{0,8}\"Secret\"")
_JSON_DATA = re.compile(r"\"(?:data|stringData)\"\s{0,8}:\s{0,8}\{")
_JSON_ENTRY = re.compile(r"\s{0,64}\"([^\"\\]{1,253})\"\s{0,8}:\s{0,8}\"([^\"\\]{0,100000})\"\s{0,8},?")


def kubernetes_secrets(text: str) -> Iterator[Secret]:
    """The values of a Kubernetes Secret's ``data`` (base64) and ``stringData``, in YAML or JSON."""
    if "Secret" not in text or "ata" not in text or not _ANY_KIND.search(text):
        return
    if _JSON_KIND.search(text):
        yield from _json_secret(text)
    breaks = _document_breaks(text)
    for a, b in zip([0, *breaks], [*breaks, len(text)], strict=True):
        if not _K8S_KIND.search(text, a, b):
            continue
        for m in _K8S_DATA.finditer(text, a, b):
            yield from _yaml_values(text, m.end(), b, len(m.group(1).expandtabs()))


def _document_breaks(text: str) -> list[int]:
    """Where each "---" line of a multi-document YAML stream starts."""
    breaks = [0] if text.startswith("---") else []
    i = text.find("\n---")
    while i >= 0:
        breaks.append(i + 1)
        i = text.find("\n---", i + 4)
    return breaks


def _yaml_values(text: str, pos: int, stop: int, indent: int) -> Iterator[Secret]:
    child: int | None = None
    block: int | None = None  # the indentation of the entry whose value is a block scalar
    while pos < stop:
        pos += 1  # past the newline
        end = text.find("\n", pos, stop)
        end = stop if end < 0 else end
        line = text[pos:end]
        pos = end
        body = line.lstrip(" \t")
        if not body.strip() or body.startswith("#"):
            continue
        depth = len(line) - len(body)
        if depth <= indent:
            return
        if child is None:
            child = depth
        if block is not None and depth > block:
            value = body.rstrip()
            start = pos - len(line) + depth
            if not _kept_k8s_value(value):
                yield Secret("kubernetes-secret", ((start, start + len(value)),))
            continue
        block = None
        if depth != child:
            continue
        m = _YAML_ENTRY.fullmatch(line)
        if m is None:
            continue
        value = m.group(2)
        if _BLOCK.fullmatch(value):
            block = depth
            continue
        start = pos - len(line) + m.start(2)
        if value[:1] in "\"'" and len(value) >= 2 and value[-1] == value[0]:
            value, start = value[1:-1], start + 1
        if _kept_k8s_value(value):
            continue
        yield Secret("kubernetes-secret", ((start, start + len(value)),))


def _kept_k8s_value(value: str) -> bool:
    """Empty, a template ({{ .Values.password | b64enc }}) or redacted: all else in a Secret is one."""
    return not value or "{{" in value or "${" in value or value.startswith("[REDACTED:")


def _json_secret(text: str) -> Iterator[Secret]:
    for m in _JSON_DATA.finditer(text):
        pos = m.end()
        while True:
            entry = _JSON_ENTRY.match(text, pos)
            if entry is None:
                break
            pos = entry.end()
            if not _kept_k8s_value(entry.group(2)):
                yield Secret("kubernetes-secret", (entry.span(2),))
