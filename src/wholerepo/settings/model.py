"""Every setting of wholerepo: one frozen, typed object, its choices and its trust boundary."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_type_hints

from ..errors import ConfigError
from ..types import SEVERITIES as SEVERITIES

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - Python 3.10
    pass  # type: ignore[import-not-found,unused-ignore]

DEFAULT_BUDGET = 1_048_576
STYLES = ("xml", "markdown", "plain", "json")
LINE_NUMBER_MODES = ("all", "sparse", "none")
FIT_MODES = ("compress", "rank")  # over the budget: compress then drop, or drop by rank only
FAIL_ON = ("none", *SEVERITIES)
FAIL_ON_SCOPES = ("diff", "all")
FORMATS = ("markdown", "sarif", "json")
THINKING = ("auto", "on", "off")
TOKENIZERS = ("deepseek-v4", "cl100k_base", "o200k_base")
BUILTIN_PROMPTS = ("review", "security", "architecture")
PRICE_KEYS = ("cache_hit", "cache_miss", "output")  # USD per 1M tokens (llm/pricing.py)

Trust = Literal["full", "limited", "none"]

# What a repository's own file may set: selection, style and review focus. Nothing here can
# send data anywhere (base_url, api_key_env), read outside the repository (prompt files), run
# code (templates) or weaken redaction (redact).
REPOSITORY_KEYS = frozenset(
    {
        "style",
        "tokenizer",
        "budget",
        "include",
        "exclude",
        "max_file_size",
        "tracked_only",
        "line_numbers",
        "line_number_interval",
        "fit",
        "model",
        "prompt",  # a built-in name only
        "instructions",  # plain text, never a template
        "fail_on",
        "fail_on_scope",
        "max_output_tokens",
    }
)
# Variables named WHOLEREPO_* that are not settings.
OTHER_VARIABLES = frozenset({"WHOLEREPO_CACHE_DIR", "WHOLEREPO_CONFIG"})


@dataclass(frozen=True)
class Settings:
    """Every setting of wholerepo, with its default."""

    # pack
    style: str = "xml"
    tokenizer: str = "deepseek-v4"
    budget: int | None = None  # None: 1,048,576 for a pack, the window's room for a review
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int = 1_048_576
    tracked_only: bool = False
    line_numbers: str = "sparse"
    line_number_interval: int = 10
    fit: str = "compress"
    cache: bool = True
    redact: bool = True
    # review
    base_url: str = "https://api.deepseek.com"
    model: str | None = None  # None: the endpoint's only model, else deepseek-flash
    api_key_env: str | None = None
    prompt: str = "review"
    instructions: str | None = None  # extra plain-text instructions, after the built-in ones
    fail_on: str = "none"
    fail_on_scope: str | None = None  # None: "diff" with --base, else "all"
    max_output_tokens: int = 32_768
    context_window: int | None = None
    timeout: float = 1800.0
    thinking: str = "auto"
    max_retries: int = 4
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each time
    retry_after_cap: float = 60.0  # the longest Retry-After wait honoured, in seconds
    stream: bool = True  # stream the reply (progress, keep-what-arrived on faults)
    trust_repo_config: bool = False
    # where each non-default value came from: key -> "user:<path>" | "repo:<path>" | "env:<VAR>" | "flag"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # directory whose files a trusted relative prompt path is relative to
    prompt_base: Path | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_choice("style", self.style, STYLES)
        _check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        _check_choice("line_numbers", self.line_numbers, LINE_NUMBER_MODES)
        _check_choice("fit", self.fit, FIT_MODES)
        _check_choice("fail_on", self.fail_on, FAIL_ON)
        if self.fail_on_scope is not None:
            _check_choice("fail_on_scope", self.fail_on_scope, FAIL_ON_SCOPES)
        _check_choice("thinking", self.thinking, THINKING)
        for name in ("max_file_size", "max_output_tokens", "line_number_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("budget", "context_window"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"timeout must be a positive number of seconds, got {self.timeout}")
        for name in ("retry_backoff", "retry_after_cap"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number of seconds, not negative, got {value}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must not be negative, got {self.max_retries}")
        _check_prices(self.prices)
        if self.model is not None and not self.model.strip():
            raise ConfigError("model must not be empty")
        if self.model is not None and not self.model.isprintable():
            # A model id is printed on the terminal and in every report: no control, escape,
            # bidi or line-breaking character, whoever chose it (a repository may).
            raise ConfigError(f"model must be printable text on one line, got {self.model!r}")
        if not self.prompt.strip():
            raise ConfigError("prompt must not be empty")

    def named(self, key: str) -> str:
        """How a message names where ``key``'s value came from: ``--context-window``,
        ``WHOLEREPO_CONTEXT_WINDOW``, ``context_window in ~/.config/wholerepo/config.toml``."""
        source = self.sources.get(key)
        if source is None or source == "flag":
            return "--" + key.replace("_", "-")
        kind, _, where = source.partition(":")
        return where if kind == "env" else f"{key} in {where}"

    @property
    def pack_budget(self) -> int:
        return self.budget if self.budget is not None else DEFAULT_BUDGET


def _check_prices(prices: Mapping[str, Mapping[str, float]]) -> None:
    """Every price a finite number, not negative, under a known key: checked where it is read,
    so a bad one is an error naming its file, never a crash when the cost is computed."""
    for model, table in prices.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"prices.{model} must be a table of {', '.join(PRICE_KEYS)}, got {table!r}")
        for key, value in table.items():
            if key not in PRICE_KEYS:
                known = f"known keys: {', '.join(PRICE_KEYS)}"
                raise ConfigError(f"prices.{model}: unknown key {key!r}", known)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"prices.{model}.{key} must be a number of USD per 1M tokens, not negative, got {value!r}"
                )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


_HINTS = get_type_hints(Settings)
FIELDS = frozenset(
    f.name for f in dataclasses.fields(Settings) if f.name not in ("sources", "prompt_base", "warnings")
)
