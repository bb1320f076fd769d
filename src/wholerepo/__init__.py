"""wholerepo: review a whole codebase in one pass with a long-context model."""

from __future__ import annotations

from typing import Any

from .pack import Pack, PackedFile, pack


def __getattr__(name: str) -> Any:
    # Read lazily: importlib.metadata costs tens of milliseconds at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("wholerepo")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(name)


__all__ = ["Pack", "PackedFile", "__version__", "pack"]
