"""The redactor: find every secret in a file's text (or a path) and replace only its value.

Only the secret value is replaced, by ``[REDACTED:<kind>]``; no newline is added or removed,
so every line keeps its number. Token formats (rules.py) run on the lines that can hold a token,
each only if one of its literal markers occurs there; the detectors that read context
(contexts.py) each gate on their own markers. Everything is linear in the text's length.
"""

from __future__ import annotations

from . import contexts
from .paths import is_config_path, is_example_path, redact_path
from .rules import RULES, Rule, find_tokens
from .text import Lines, Secret, lines_with, long_run_lines, lowered, replace, resolve_all

_MAX_PASSES = 4


class Redactor:
    """Finds secrets in a file's text and replaces each value with ``[REDACTED:<kind>]``."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules
        self.short_rules = tuple(rule for rule in rules if rule.anywhere)
        # Short values are looked for on the lines that hold a marker as it is usually written
        # ("Basic"); every spelling is found where the value is long enough (16+ characters)
        # to make its line one of those all rules run on.
        spellings = {m.title() if rule.lower else m for rule in self.short_rules for m in rule.markers}
        self._short_markers = tuple(sorted(spellings))

    def find(self, path: str, text: str) -> list[Secret]:
        """The secrets in ``text``, without overlaps, in order of position."""
        return self._find(path, text)[0]

    def _find(self, path: str, text: str) -> tuple[list[Secret], bool]:
        """``find``, and whether no candidate lost to an overlapping one."""
        if not text:
            return [], True
        example = is_example_path(path)
        # Order is priority: where two find the same text, the earlier one's kind is kept.
        found: list[Secret] = [*contexts.private_keys(text), *contexts.putty_keys(text)]
        spans = long_run_lines(text)
        lines = Lines(text, spans) if spans else None
        if lines is not None:
            found += find_tokens(self.rules, lines)
        taken = set(spans)
        short = [span for span in lines_with(text, self._short_markers) if span not in taken]
        if short:
            found += find_tokens(self.short_rules, Lines(text, short))
        found += contexts.kubernetes_secrets(text)
        # Assigned values are looked for in the whole text, not only on the lines with a long run:
        # a value of punctuation and short runs (Django's SECRET_KEY) makes no 16+ run. Each of
        # its regexes starts with a literal, which the engine finds as fast as a substring search.
        found += contexts.assigned(Lines(text, [(0, len(text))]), example)
        if lines is not None:
            found += contexts.url_parameters(lines, example)
        found += contexts.url_passwords(text, example)
        low = lowered(text)  # one lower-case copy for the detectors whose markers have many spellings
        found += contexts.passwords(text, low, example, is_config_path(path))
        found += contexts.markup(text, example)
        found += contexts.curl_users(text, example)
        found += contexts.command_passwords(text, low, example)
        found += contexts.headers(text, low, example)
        found += contexts.env_defaults(text, low, example)
        found += contexts.inline_tokens(text, low, example)
        return resolve_all(text, found)

    def redact(self, path: str, text: str) -> tuple[str, tuple[str, ...]]:
        """``text`` with every secret's value replaced, and one kind per secret removed."""
        kinds: list[str] = []
        # Where two candidates overlapped, the loser's remainder can look like a secret on its
        # own once the winner is replaced: then look again, until nothing is found, so a second
        # call on the result finds nothing either. (Without a loser there is nothing left over:
        # a placeholder is never part of a secret.)
        for _ in range(_MAX_PASSES):
            secrets, whole = self._find(path, text)
            if not secrets:
                break
            text = replace(text, secrets)
            kinds += (s.kind for s in secrets)
            if whole:
                break
        return text, tuple(kinds)

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
            lines[i], found = redact_path(line)
            kinds.extend(found)
        flush()
        return "\n".join(lines), tuple(kinds)
