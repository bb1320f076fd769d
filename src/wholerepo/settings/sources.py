"""One typed settings object, layered, with an explicit trust level for each source.

Layers, later ones win: defaults < the user's own file < the repository's file < ``WHOLEREPO_*``
variables < flags.

- **Trusted**: flags, ``WHOLEREPO_*`` variables and the user file (``config.toml`` in the user
  configuration directory, ``~/.config/wholerepo/config.toml`` on Linux, or the file named by
  ``WHOLEREPO_CONFIG``). They may set every key.
- **Untrusted**: the repository under review (``.wholerepo.toml``, ``[tool.wholerepo]`` in
  ``pyproject.toml``). A pull request writes those files, so they may only set keys that cannot
  send data anywhere, read anything outside the repository, run code or weaken redaction
  (``REPOSITORY_KEYS``). Any other key, an unknown key, a bad value or a file that is not TOML is
  a one-line warning and is ignored: a repository can never break or steer a review.
  ``trust_repo_config`` (a flag, a variable or the user file) lifts the limit for one's own
  repositories; ``repository="none"`` reads no repository file at all (``pr-review``).
"""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from ..errors import ConfigError
from ..git.listing import pattern_problem
from ..git.reading import FileTooLarge, read_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from .model import (
    _HINTS,
    BUILTIN_PROMPTS,
    FIELDS,
    OTHER_VARIABLES,
    REPOSITORY_KEYS,
    Settings,
    Trust,
)


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
            if from_text or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                number = float(value)
            else:
                raise ValueError
            if not math.isfinite(number):
                raise ValueError
            return number
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
            if isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values()):
                return {str(k): dict(v) for k, v in value.items()}
            raise ValueError
    except (ValueError, TypeError, AttributeError, OverflowError):
        pass
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        target, getattr(target, "__name__", str(target))
    )
    if t_origin is tuple:
        kind = "a list of strings"
    if t_origin is Mapping or target is Mapping:
        kind = "a table of tables"
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


# -- files ---------------------------------------------------------------------------------------


def user_config_file(env: Mapping[str, str] | None = None) -> Path:
    """The user's own configuration file: ``WHOLEREPO_CONFIG``, else the platform's config dir."""
    environ = os.environ if env is None else env
    named = environ.get("WHOLEREPO_CONFIG")
    if named:
        return Path(named).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("wholerepo", appauthor=False)) / "config.toml"


# A repository's settings file larger than this is not read: a pull request could add a file of
# gigabytes (zeros compress to nearly nothing in git) that parsing would hold in memory.
MAX_REPOSITORY_FILE = 1 << 20


def _read_toml(file: Path, limit: int | None = None) -> dict[str, Any]:
    try:
        if limit is None:
            text = file.read_text(encoding="utf-8")
        else:  # a regular file, not a link, read up to the limit and no further
            text = read_bytes(file.parent, file.name, limit).decode("utf-8")
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except FileTooLarge as exc:
        raise ConfigError(f"{file}: {exc.size:,} bytes, over {limit:,}: not read") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: invalid TOML: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc


def _user_layer(file: Path) -> dict[str, Any]:
    """The user file's keys (top level, or a [tool.wholerepo] table); errors are errors: it is yours."""
    if not file.is_file():
        return {}
    data = _read_toml(file)
    table = data.get("tool", {}).get("wholerepo", data) if isinstance(data.get("tool"), dict) else data
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [tool.wholerepo] must be a table")
    return table


def _repository_file(directory: Path, warnings: list[str]) -> tuple[dict[str, Any], Path] | None:
    """The repository's settings file in ``directory``, if any. Never raises: a pull request
    must not be able to stop a review with a broken file."""
    for name in (".wholerepo.toml", "pyproject.toml"):
        file = directory / name
        try:
            info = file.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            # A link could point anywhere on the reviewer's machine: never followed.
            warnings.append(f"{file}: a symbolic link, not read")
            continue
        if not stat.S_ISREG(info.st_mode):  # a directory, a FIFO, a device: never opened
            warnings.append(f"{file}: not a regular file, not read")
            continue
        try:
            data = _read_toml(file, MAX_REPOSITORY_FILE)
        except ConfigError as exc:
            warnings.append(f"{exc.message}; the file is ignored")
            continue
        tool = data.get("tool")
        table = tool.get("wholerepo") if isinstance(tool, dict) else None
        if name == ".wholerepo.toml" and table is None:
            table = data
        if table is None:
            continue
        if not isinstance(table, dict):
            warnings.append(f"{file}: [tool.wholerepo] must be a table; ignored")
            continue
        if name == ".wholerepo.toml" and _has_tool_table(directory / "pyproject.toml"):
            warnings.append(f"{file} is read; [tool.wholerepo] in pyproject.toml beside it is ignored")
        return table, file
    return None


def _has_tool_table(file: Path) -> bool:
    """Whether ``file`` (a regular file, not a link) has a [tool.wholerepo] table."""
    try:
        if not stat.S_ISREG(file.lstat().st_mode):
            return False
        tool = _read_toml(file, MAX_REPOSITORY_FILE).get("tool")
    except (OSError, ConfigError):
        return False
    return isinstance(tool, dict) and "wholerepo" in tool


# -- layering ------------------------------------------------------------------------------------


def load_settings(
    directories: list[Path] | tuple[Path, ...] = (),
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    user_file: Path | Literal["default"] | None = "default",
    repository: Trust | None = None,
) -> Settings:
    """Merge the layers into one Settings.

    ``directories``: where the repository's files may be (its root, then the packed directory;
    a later one overrides an earlier one). ``repository``: how far to trust them; by default
    ``"limited"`` (the allow-list), ``"full"`` when trust_repo_config is set in a trusted layer.
    """
    environ = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    warnings: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    prompt_base: Path | None = None

    # Trusted layers, read first: they decide how far the repository is trusted.
    file = user_config_file(environ) if user_file == "default" else user_file
    named = environ.get("WHOLEREPO_CONFIG")
    if user_file == "default" and named and file is not None and not file.is_file() and named != os.devnull:
        # Named on purpose: a typo must not silently drop one's own settings (key, endpoint);
        # /dev/null says "no user file" on purpose.
        raise ConfigError(f"WHOLEREPO_CONFIG={named}: no such file", "unset it to use the default file")
    user_values: dict[str, Any] = {}
    if file is not None:
        for raw, value in _user_layer(file).items():
            key = _key(raw)
            if key not in FIELDS:
                raise ConfigError(f"{file}: unknown key {raw!r}", f"known keys: {', '.join(sorted(FIELDS))}")
            user_values[key] = _check_value(key, _coerce(key, value, str(file), from_text=False), str(file))
    env_values: dict[str, Any] = {}
    for var, text in sorted(environ.items()):
        if not var.startswith("WHOLEREPO_") or var in OTHER_VARIABLES:
            continue
        key = var[len("WHOLEREPO_") :].lower()
        if key not in FIELDS or key == "prices":
            warnings.append(f"unknown environment variable {var} ignored")
            continue
        where = f"environment {var}"
        env_values[key] = _check_value(key, _coerce(key, text, where, from_text=True), where)
    flag_values = {k: _coerce(k, v, "command line", from_text=False) for k, v in flags.items()}

    if repository is None:
        trusted = {**user_values, **env_values, **flag_values}
        repository = "full" if trusted.get("trust_repo_config") else "limited"

    for key, value in user_values.items():
        values[key] = value
        sources[key] = f"user:{file}"
    if "prompt" in user_values and file is not None:
        prompt_base = file.parent

    if repository != "none":
        seen: set[Path] = set()
        for directory in directories:
            found = _repository_file(directory, warnings)
            if found is None or found[1] in seen:
                continue
            table, repo_file = found
            seen.add(repo_file)
            for raw, value in table.items():
                key = _key(raw)
                accepted = _repository_value(key, raw, value, repo_file, repository, warnings)
                if accepted is _IGNORED:
                    continue
                values[key] = accepted
                sources[key] = f"repo:{repo_file}"
                if key == "prompt":
                    prompt_base = repo_file.parent

    for key, value in env_values.items():
        values[key] = value
        sources[key] = f"env:WHOLEREPO_{key.upper()}"
        if key == "prompt":
            prompt_base = None
    for key, value in flag_values.items():
        values[key] = value
        sources[key] = "flag"
        if key == "prompt":
            prompt_base = None
    return Settings(**values, sources=sources, prompt_base=prompt_base, warnings=tuple(warnings))


_IGNORED = object()


def _repository_value(key: str, raw: str, value: Any, file: Path, trust: Trust, warnings: list[str]) -> Any:
    """One key of a repository file, checked; ``_IGNORED`` (with a warning) when not accepted."""
    if key not in FIELDS:
        warnings.append(f"{file}: unknown key {raw!r} ignored")
        return _IGNORED
    if trust != "full" and key not in REPOSITORY_KEYS:
        warnings.append(
            f"{file}: {raw} ignored: the repository under review cannot set it"
            " (pass --trust-repo-config for your own repositories)"
        )
        return _IGNORED
    try:
        checked = _check_value(key, _coerce(key, value, str(file), from_text=False), str(file))
    except ConfigError as exc:
        warnings.append(f"{exc.message}; ignored")
        return _IGNORED
    if key in ("include", "exclude"):
        # A repository's pattern that cannot be compiled, or matched quickly, is skipped: a pull
        # request must not be able to stop or stall every review.
        usable = []
        for pattern in checked:
            problem = pattern_problem(pattern)
            if problem is None:
                usable.append(pattern)
            else:
                warnings.append(f"{file}: {raw} pattern {pattern!r} {problem}; skipped")
        checked = tuple(usable)
    if key == "prompt" and trust != "full" and checked not in BUILTIN_PROMPTS:
        warnings.append(
            f"{file}: prompt {checked!r} ignored: the repository under review can only choose a"
            f" built-in prompt ({', '.join(BUILTIN_PROMPTS)}); use `instructions` for plain-text guidance"
        )
        return _IGNORED
    return checked
