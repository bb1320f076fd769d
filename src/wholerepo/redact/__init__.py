"""Secret redaction: remove credentials from a file's text (and a path's names), keep the rest.

- ``rules.py``: the token formats, as data, each with its source (detect-secrets, gitleaks);
- ``contexts.py``: detectors that read context (key blocks, URLs, assignments, XML, manifests);
- ``heuristics.py``: judging a value (entropy, password shape, examples and templates);
- ``paths.py``: what a path says (tests and docs, configuration);
- ``engine.py``: the Redactor that runs them all and replaces what they find.
"""

from __future__ import annotations

from .engine import Redactor, path_holds_secret, redact_path
from .paths import is_config_path, is_example_path
from .rules import RULES, Rule
from .text import Secret, placeholder

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
