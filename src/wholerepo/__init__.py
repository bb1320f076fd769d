"""wholerepo: review a whole codebase in one pass with a long-context model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .packer import Pack, PackedFile, pack

__all__ = ["Pack", "PackedFile", "__version__", "pack"]


def __getattr__(name: str) -> Any:
    # The packer is imported on first use: `wholerepo --help` and a token-counting worker
    # process do not pay for it.
    if name in ("Pack", "PackedFile", "pack"):
        from . import packer

        return getattr(packer, name)
    # Read lazily: importlib.metadata costs tens of milliseconds at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("wholerepo")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(name)
