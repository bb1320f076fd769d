"""One typed settings object, layered: defaults < repository file < WHOLEREPO_* env < flags.

The repository file is ``[tool.wholerepo]`` in ``pyproject.toml`` or a ``.wholerepo.toml``
(top-level keys, or the same table). Unknown keys and wrong types are one-line errors that name
the file and the key.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT_BUDGET = 1_048_576
STYLES = ("xml", "markdown", "plain", "json")
LINE_NUMBER_MODES = ("all", "sparse", "none")
SEVERITIES = ("info", "low", "medium", "high", "critical")
FAIL_ON = ("none", *SEVERITIES)
FORMATS = ("markdown", "sarif", "json")
THINKING = ("auto", "on", "off")
TOKENIZERS = ("deepseek-v4", "cl100k_base", "o200k_base")

# Settings a repository's own file may not change: a pull request could otherwise send the code
# (and the key) to a server of its author's choosing.
TRUSTED_ONLY = frozenset({"base_url", "api_key_env"})


@dataclass(frozen=True)
class Settings:
    """Every setting of wholerepo, with its default."""

    # pack
    style: str = "xml"
    tokenizer: str = "deepseek-v4"
    budget: int = DEFAULT_BUDGET
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int = 1_048_576
    tracked_only: bool = False
    line_numbers: str = "sparse"
    line_number_interval: int = 10
    cache: bool = True
    redact: bool = True
    # review
    base_url: str = "https://api.deepseek.com"
    model: str = "deepseek-flash"
    api_key_env: str | None = None
    prompt: str = "review"
    fail_on: str = "none"
    max_output_tokens: int = 32_768
    context_window: int | None = None
    timeout: float = 1800.0
    thinking: str = "auto"
    max_retries: int = 4
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each time
    retry_after_cap: float = 60.0  # the longest Retry-After wait honoured, in seconds
    stream: bool = True  # stream the reply (progress, keep-what-arrived on faults)
    # where each non-default value came from: key -> "file:<path>" | "env:<VAR>" | "flag"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _check_choice("style", self.style, STYLES)
        _check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        _check_choice("line_numbers", self.line_numbers, LINE_NUMBER_MODES)
        _check_choice("fail_on", self.fail_on, FAIL_ON)
        _check_choice("thinking", self.thinking, THINKING)
        for name in ("budget", "max_file_size", "max_output_tokens", "line_number_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.context_window is not None and self.context_window <= 0:
            raise ConfigError(f"context_window must be a positive integer, got {self.context_window}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")
        if self.retry_backoff < 0 or self.retry_after_cap < 0 or self.max_retries < 0:
            raise ConfigError("retry_backoff, retry_after_cap and max_retries must not be negative")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


_HINTS = get_type_hints(Settings)
FIELDS = {f.name for f in dataclasses.fields(Settings) if f.name != "sources"}


def _coerce(key: str, value: Any, where: str, *, from_text: bool) -> Any:
    """Check (and for env strings, parse) one value against the field's declared type."""
    hint = _HINTS[key]
    origin = get_origin(hint)
    args = [a for a in get_args(hint) if a is not type(None)]
    optional = type(None) in get_args(hint)
    if optional and (value is None or (from_text and value == "")):
        return None
    target = args[0] if origin is not None and optional and len(args) == 1 else hint
    t_origin = get_origin(target)
    try:
        if target is bool:
            if from_text:
                low = str(value).strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, bool):
                return value
            raise ValueError
        if target is int:
            if from_text:
                return int(str(value).replace("_", ""))
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise ValueError
        if target is float:
            if from_text:
                return float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            raise ValueError
        if target is str:
            if isinstance(value, str):
                return value
            raise ValueError
        if t_origin is tuple:
            if from_text:
                return tuple(p.strip() for p in str(value).split(",") if p.strip())
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError
        if t_origin is Mapping or target is Mapping:
            if isinstance(value, Mapping):
                return {str(k): dict(v) for k, v in value.items()}
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        pass
    kind = getattr(target, "__name__", str(target))
    if t_origin is tuple:
        kind = "list of strings"
    raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}")


def _check_value(key: str, value: Any, where: str) -> Any:
    """Apply the Settings rules (choices, positive numbers) to one value, naming where it came from."""
    try:
        Settings(**{key: value})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", exc.hint) from exc
    return value


def _key(raw: str) -> str:
    return raw.replace("-", "_")


def _file_layer(path: Path) -> tuple[dict[str, Any], Path] | None:
    """Read the repository's settings file in ``path``, if any."""
    for name in (".wholerepo.toml", "pyproject.toml"):
        file = path / name
        if not file.is_file():
            continue
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: invalid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
        table = data.get("tool", {}).get("wholerepo")
        if name == ".wholerepo.toml" and table is None:
            table = data
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: [tool.wholerepo] must be a table")
        return table, file
    return None


def load_settings(
    directories: list[Path] | tuple[Path, ...] = (),
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    trust_repository: bool = True,
) -> Settings:
    """Merge the layers into one Settings; later directories override earlier ones."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    seen: set[Path] = set()
    for directory in directories:
        found = _file_layer(directory)
        if found is None or found[1] in seen:
            continue
        table, file = found
        seen.add(file)
        for raw, value in table.items():
            key = _key(raw)
            if key not in FIELDS:
                raise ConfigError(f"{file}: unknown key {raw!r}", f"known keys: {', '.join(sorted(FIELDS))}")
            if key in TRUSTED_ONLY and not trust_repository:
                raise ConfigError(f"{file}: {raw} cannot be set by the repository under review")
            values[key] = _check_value(key, _coerce(key, value, str(file), from_text=False), str(file))
            sources[key] = f"file:{file}"
    environ = os.environ if env is None else env
    for var, text in sorted(environ.items()):
        if not var.startswith("WHOLEREPO_") or var in ("WHOLEREPO_CACHE_DIR",):
            continue
        key = var[len("WHOLEREPO_") :].lower()
        if key not in FIELDS or key == "prices":
            raise ConfigError(f"environment: unknown variable {var}")
        where = f"environment {var}"
        values[key] = _check_value(key, _coerce(key, text, where, from_text=True), where)
        sources[key] = f"env:{var}"
    for key, value in (flags or {}).items():
        if value is None:
            continue
        values[key] = _coerce(key, value, "command line", from_text=False)
        sources[key] = "flag"
    return Settings(**values, sources=sources)
