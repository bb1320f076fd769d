"""Secret redaction (placeholder until the trust work lands)."""

from __future__ import annotations


class Redactor:
    def redact(self, path: str, text: str) -> tuple[str, tuple[str, ...]]:
        return text, ()
