"""Secret redaction: remove credentials from a file's text (and a path's names), keep the rest.

- ``rules.py``: the token formats, as data, each with its source (detect-secrets, gitleaks);
- ``contexts.py``: detectors that read context (key blocks, URLs, assignments, XML, manifests);
- ``heuristics.py``: judging a value (entropy, password shape, examples and templates);
- ``paths.py``: what a path says (tests and docs, configuration) and tokens in its names;
- ``engine.py``: the Redactor that runs them all and replaces what they find.

The engine and its detectors are imported on first use (``Redactor``, ``RULES``): checking a
path's names, which every pack does, needs only the token rules, compiled one by one as their
markers turn up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .paths import is_config_path, is_example_path, path_holds_secret, redact_path
from .text import Secret, placeholder

if TYPE_CHECKING:
    from .engine import Redactor
    from .rules import RULES, Rule

__all__ = [
    "RULES",
    "Redactor",
    "Rule",
    "Secret",
    "is_config_path",
    "is_example_path",
    "path_holds_secret",
    "placeholder",
    "redact_path",
]

_LAZY = {"Redactor": ".engine", "RULES": ".rules", "Rule": ".rules"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
