"""Model text as it goes into a GitHub comment: wholerepo.sanitize's Markdown, and no references.

GitHub turns ``#123``, ``owner/repo#123``, ``GH-123`` and links to issues or pull requests into
cross-references: each one puts "mentioned this" on that issue's timeline, in this repository or
any other. Model text (which a pull request's author can steer) must not do that from our
comments, just as it must not @mention anyone. A zero-width space after ``#`` (or ``GH-``, or the
``issues/`` of a link) keeps the text readable and stops the link.
"""

from __future__ import annotations

import re

from .. import sanitize
from ..sanitize import ZWSP

_ISSUE_NUMBER = re.compile(r"#(?=\d)")
_GH_NUMBER = re.compile(r"\b(GH-)(?=\d)", re.IGNORECASE)
_ISSUE_LINK = re.compile(r"/(issues|pull|pulls|discussions)/(?=\d)", re.IGNORECASE)


def neutralise_references(text: str) -> str:
    """Break every issue or pull request reference GitHub would link (and notify)."""
    text = _ISSUE_NUMBER.sub("#" + ZWSP, text)
    text = _GH_NUMBER.sub(lambda m: m.group(1) + ZWSP, text)
    return _ISSUE_LINK.sub(lambda m: f"/{m.group(1)}/{ZWSP}", text)


def markdown_text(text: object, limit: int = 20_000) -> str:
    """Model prose for a comment: no HTML, comments, images, mentions or references."""
    return neutralise_references(sanitize.markdown_text(text, limit))


def markdown_inline(text: object, limit: int = 300) -> str:
    """Model text for one line of a comment (a title), like markdown_text."""
    return neutralise_references(sanitize.markdown_inline(text, limit))
