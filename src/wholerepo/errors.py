"""Error types the core raises; the CLI turns each into one line and its exit code."""

from __future__ import annotations

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
