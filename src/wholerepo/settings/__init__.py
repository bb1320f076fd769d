"""Settings: one typed object (model.py), layered from sources that carry their trust (sources.py)."""

from __future__ import annotations

from .model import (
    BUILTIN_PROMPTS,
    DEFAULT_BUDGET,
    FAIL_ON,
    FAIL_ON_SCOPES,
    FIELDS,
    FIT_MODES,
    FORMATS,
    LINE_NUMBER_MODES,
    REPOSITORY_KEYS,
    SEVERITIES,
    STYLES,
    THINKING,
    TOKENIZERS,
    Settings,
    Trust,
)
from .sources import load_settings, user_config_file

__all__ = [
    "BUILTIN_PROMPTS",
    "DEFAULT_BUDGET",
    "FAIL_ON",
    "FAIL_ON_SCOPES",
    "FIELDS",
    "FIT_MODES",
    "FORMATS",
    "LINE_NUMBER_MODES",
    "REPOSITORY_KEYS",
    "SEVERITIES",
    "STYLES",
    "THINKING",
    "TOKENIZERS",
    "Settings",
    "Trust",
    "load_settings",
    "user_config_file",
]
