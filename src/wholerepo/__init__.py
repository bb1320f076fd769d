"""wholerepo: review a whole codebase in one pass with a long-context model."""

from __future__ import annotations

from typing import Any

# Bound eagerly on purpose: importing the submodule wholerepo.pack would otherwise shadow the
# function of the same name on the package.
from .pack import Pack, PackedFile, pack

__all__ = ["Pack", "PackedFile", "__version__", "pack"]


def __getattr__(name: str) -> Any:
    # Read lazily: importlib.metadata costs tens of milliseconds at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("wholerepo")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(name)
