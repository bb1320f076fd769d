"""Error types the core raises; the CLI turns each into one line and its exit code."""

from __future__ import annotations

import socket
from typing import ClassVar


class WholerepoError(Exception):
    """Base of every error meant for the user: a one-line message and an optional fix."""

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class UsageError(WholerepoError):
    """Bad flags, paths or values given by the user."""


class ConfigError(WholerepoError):
    """A configuration file or variable is invalid."""


class TokenizerError(WholerepoError):
    """A tokenizer cannot be loaded (e.g. its data is not installed offline)."""


class BudgetError(WholerepoError):
    """The budget is too small for even the fixed parts of the prompt."""


class EndpointError(WholerepoError):
    """The model endpoint failed after retries, or its reply could not be used."""

    exit_code: ClassVar[int] = 3


class OutputError(WholerepoError):
    """An output could not be written."""


class BlankReplyError(EndpointError):
    """The model's reply was empty or only whitespace (DeepSeek's answer when JSON mode fails)."""


class ReplyParseError(EndpointError):
    """The model's reply holds no usable findings JSON."""


def unresolvable(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a failed DNS lookup: no network, or a wrong host, so retrying
    cannot help. HTTP libraries wrap socket.gaierror (requests in urllib3's MaxRetryError and its
    ``reason``, httpx in ``__cause__``): search causes, contexts, args and reasons."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return True
        linked = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return False
