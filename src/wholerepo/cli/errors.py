"""How every command ends: known errors as one line and their exit code, Ctrl-C and SIGTERM
as "Interrupted." with 130 and 143, a bug as one line and 70 (the traceback with --debug)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..errors import WholerepoError
from .groups import help_path

EXIT_INTERNAL = 70  # an unexpected error (a bug): distinct from every documented exit code


def echo_err(message: str) -> None:
    """One message on stderr, never a terminal's escape sequence: names are escaped already
    (sanitize.escape_path), and an endpoint's or a model's words lose their control characters."""
    from ..sanitize import strip_control

    try:
        click.echo(strip_control(message), err=True)
    except (OSError, ValueError):  # stderr gone (a closed pipe): the exit code still says it
        pass


def reopen_closed_streams() -> None:
    """A command started with stdin, stdout or stderr closed (``>&-``) gets /dev/null there.

    Otherwise the next file opened (the cache, a report) would take descriptor 1 or 2 and
    anything written there would land in it. ``sys.stdout`` stays None, so writing a result to a
    closed stdout is still a one-line error (cli/output.py), and messages to a closed stderr go
    nowhere instead of failing the command.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process's life
    if sys.stdin is None:
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job, ``timeout``): stopped like Ctrl-C, findings so far kept."""


class Interrupts:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, remembered: a finalizer (``__del__``) that happens
    to run when one arrives swallows the exception ("Exception ignored in ..."), and the command
    must still stop. Long work calls ``check`` between steps (the progress callback does)."""

    seen: type[KeyboardInterrupt] | None = None

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.seen = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        raise cls.seen

    @classmethod
    def check(cls) -> None:
        if cls.seen is not None and threading.current_thread() is threading.main_thread():
            raise cls.seen


@contextmanager
def handled_errors(debug: bool) -> Iterator[None]:
    """One handler for every command: known errors become one line and their exit code."""
    previous = None
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # A Ctrl-C swallowed by a finalizer is remembered by Interrupts, reported as "Interrupted.".
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    Interrupts.seen = None
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, Interrupts.handler)
        previous_term = signal.signal(signal.SIGTERM, Interrupts.handler)
        sys.unraisablehook = unraisable
    try:
        yield
        Interrupts.check()
    except WholerepoError as exc:
        echo_err(f"Error: {exc.one_line()}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        echo_err("Interrupted.")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as exc:  # a bug: one line, the traceback only on request
        if debug:
            raise
        echo_err(
            f"Error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            " (rerun with --debug for the traceback)"
        )
        sys.exit(EXIT_INTERNAL)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


class OneLineErrors(click.Group):
    """A group whose usage errors are one line (``Error: ...``) and exit 2, as every error is."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        reopen_closed_streams()
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `wholerepo`: show the help
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            where = f" (see '{help_path(exc.ctx)} --help')" if exc.ctx is not None else ""
            echo_err(f"Error: {' '.join(exc.format_message().split())}{where}")
            sys.exit(2)
        except click.ClickException as exc:
            echo_err(f"Error: {' '.join(exc.format_message().split())}")
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            echo_err("Interrupted.")
            sys.exit(130)
        # Without standalone mode click returns a command's exit code instead of exiting.
        if isinstance(rv, int) and not isinstance(rv, bool):
            sys.exit(rv)
        return rv
