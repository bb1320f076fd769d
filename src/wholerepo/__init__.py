"""wholerepo: review a whole codebase in one pass with a long-context model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .packer import Pack, PackedFile, pack
    from .reviewer import ReviewResult
    from .reviewer.api import review

__all__ = ["Pack", "PackedFile", "ReviewResult", "__version__", "pack", "review"]


def __getattr__(name: str) -> Any:
    # The packer is imported on first use: `wholerepo --help` and a token-counting worker
    # process do not pay for it.
    if name in ("Pack", "PackedFile", "pack"):
        from . import packer

        return getattr(packer, name)
    if name == "review":
        from .reviewer.api import review

        return review
    if name == "ReviewResult":
        from .reviewer.result import ReviewResult

        return ReviewResult
    # Read lazily: importlib.metadata costs tens of milliseconds at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("wholerepo")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(name)
