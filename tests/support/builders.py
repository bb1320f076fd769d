"""Builders of model replies and their finding items, for the tests that script an endpoint."""

from __future__ import annotations

import json
from typing import Any

# A two-function module with one bug: add() subtracts (line 2).
APP = "def add(a, b):\n    return a - b\n\n\ndef main():\n    print(add(1, 2))\n"


def finding(**overrides: Any) -> dict[str, Any]:
    """A reply's finding item about APP's bug, with any field replaced."""
    item: dict[str, Any] = {
        "path": "app.py",
        "start_line": 2,
        "end_line": 2,
        "severity": "high",
        "category": "bug",
        "title": "add() subtracts",
        "body": "The function named add returns a - b.",
        "suggestion": "return a + b",
        "quote": "return a - b",
    }
    item.update(overrides)
    return item


def reply(*items: dict[str, Any], summary: str = "Reviewed.") -> str:
    """A reply as a model writes it: the findings object as JSON text."""
    return json.dumps({"summary": summary, "findings": list(items)})
