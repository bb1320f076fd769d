"""The redactor: find every secret in a file's text (or a path) and replace only its value.

Only the secret value is replaced, by ``[REDACTED:<kind>]``; no newline is added or removed,
so every line keeps its number. Token formats (rules.py) run on the lines that can hold a token,
each only if one of its literal markers occurs there; the detectors that read context
(contexts.py) each gate on their own markers. Everything is linear in the text's length.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from functools import lru_cache

from . import contexts
from .paths import is_config_path, is_example_path
from .rules import RULES, Rule, sk_kind
from .text import Lines, Secret, long_run_lines, placeholder

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_MAX_PASSES = 4
_CONTEXT = 100  # characters of a value's line before it that a rule's check sees


class Redactor:
    """Finds secrets in a file's text and replaces each value with ``[REDACTED:<kind>]``."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules
        self._markers = sorted({m for rule in rules for m in rule.markers})

    def find(self, path: str, text: str) -> list[Secret]:
        """The secrets in ``text``, without overlaps, in order of position."""
        if not text:
            return []
        example = is_example_path(path)
        found: list[Secret] = [*contexts.private_keys(text)]
        spans = long_run_lines(text)
        if spans:
            lines = Lines(text, spans)
            found += self._tokens(lines)
            found += contexts.assigned(lines)
            found += contexts.url_parameters(lines, example)
        found += contexts.url_passwords(text, example)
        found += contexts.kubernetes_secrets(text)
        found += contexts.passwords(text, example, is_config_path(path))
        found += contexts.markup(text, example)
        found += contexts.curl_users(text, example)
        return _resolve(text, found)

    def _tokens(self, lines: Lines) -> Iterator[Secret]:
        joined = lines.text
        present = {m for m in self._markers if m in joined}
        for rule in self.rules:
            if rule.markers and present.isdisjoint(rule.markers):
                continue
            for m in rule.pattern.finditer(joined):
                start, end = m.span(rule.group)
                if start < 0:
                    continue
                if end < len(joined) and joined[end] in _ALNUM:
                    continue  # part of a longer word: not this format (the regex saw its start)
                value = joined[start:end]
                if "EXAMPLE" in value.upper() or len(set(value)) < 8:
                    continue  # documented examples (AKIAIOSFODNN7EXAMPLE) and xxxx stand-ins
                pos, line, column = lines.locate(start)
                if rule.check is not None and not rule.check(value, line[max(0, column - _CONTEXT) : column]):
                    continue
                kind = sk_kind(value) if rule.kind == "openai-key" else rule.kind
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
            text = _replace(text, secrets)
            kinds += (s.kind for s in secrets)
        return text, tuple(kinds)

    def redact_path(self, path: str) -> tuple[str, tuple[str, ...]]:
        """``path`` with every secret in its file and directory names replaced.

        Each name is examined on its own, as one line of text, by the token formats and the
        other detectors: a name never spans two.
        """
        if not _may_hold_token(path):
            return path, ()
        as_lines = path.replace("/", "\n")
        redacted, kinds = self.redact("", as_lines)
        if not kinds:
            return path, ()
        return redacted.replace("\n", "/"), kinds

    def redact_diff(self, diff: str) -> tuple[str, tuple[str, ...]]:
        """A unified diff (``git diff``) with secrets redacted in its hunks; every +/-/space kept.

        Each file's hunk lines are redacted together without their one-character prefix, under
        the file's path, so added and removed secrets alike are caught and the diff stays valid.
        Every other line (``diff --git``, ``---``/``+++``, renames) names paths: the names that
        hold a secret are redacted as in the pack. A hunk header's trailing context is code.
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
                head, sep, context = line.partition(" @@")
                if sep and context.strip():
                    redacted, found = self.redact(path, context)
                    lines[i] = head + sep + redacted
                    kinds.extend(found)
                continue
            elif in_hunk and line[:1] in (" ", "+", "-"):
                block.append(i)
                continue
            elif line.startswith("+++ b/") or (line.startswith("--- a/") and not path):
                path = line[6:]
            lines[i], found = self.redact_path(line)
            kinds.extend(found)
        flush()
        return "\n".join(lines), tuple(kinds)


def _replace(text: str, secrets: list[Secret]) -> str:
    pieces, at = [], 0
    for a, b, kind in sorted((a, b, s.kind) for s in secrets for a, b in s.spans):
        pieces += [text[at:a], placeholder(kind)]
        at = b
    pieces.append(text[at:])
    return "".join(pieces)


def _may_hold_token(path: str) -> bool:
    """A run of 8+ token characters with a digit or a capital: short of that no rule can match."""
    run = digits_or_caps = 0
    for c in path:
        if c in _ALNUM or c in "+=_-.:~":
            run += 1
            digits_or_caps += c.isdigit() or c.isupper()
            if run >= 8 and digits_or_caps:
                return True
        else:
            run = digits_or_caps = 0
    return False


@lru_cache(maxsize=1)
def _default() -> Redactor:
    return Redactor()


def redact_path(path: str) -> str:
    """``path`` with the secrets in its names replaced (the same path if it holds none)."""
    return _default().redact_path(path)[0]


def path_holds_secret(path: str) -> bool:
    """Whether a file or directory name in ``path`` holds a secret."""
    return bool(_default().redact_path(path)[1])


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
