"""Groups with a default command: ``wholerepo audit [PATH]`` and ``wholerepo eval CORPUS`` run one
without naming it, next to subcommands (``audit plan``, ``eval plant``).

The default command has an internal name that users never type, so neither its usage line, the
group's help, nor an error's ``see '... --help'`` may show it.
"""

from __future__ import annotations

import click


class DefaultCommand(click.Command):
    """A group's default command, shown as the group itself: ``wholerepo audit [PATH] [OPTIONS]``."""

    def __init__(self, *args: object, usage: str = "[OPTIONS]", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.usage = usage

    def shown_path(self, ctx: click.Context) -> str:
        return ctx.command_path.removesuffix(f" {self.name}")

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(self.shown_path(ctx), self.usage.replace("{path}", self.shown_path(ctx)))


class DefaultGroup(click.Group):
    """A group whose first argument, when it names no subcommand, goes to ``default``; its help is
    the default command's, then the subcommands."""

    default = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The default's own name goes to it as an argument too: a directory may be called that.
        if (
            not args
            or args[0] == self.default
            or (args[0] not in self.commands and args[0] not in ("-h", "--help"))
        ):
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        command = self.commands[self.default]
        with click.Context(command, info_name=ctx.info_name, parent=ctx.parent) as sub:
            command.format_help(sub, formatter)
        self.format_commands(ctx, formatter)


def help_path(ctx: click.Context) -> str:
    """The command path a user types for ``--help`` at ``ctx``."""
    command = ctx.command
    return command.shown_path(ctx) if isinstance(command, DefaultCommand) else ctx.command_path
