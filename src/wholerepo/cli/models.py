"""`wholerepo models`: what an endpoint serves, and its window where it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .errors import handled_errors
from .options import flag_overrides, print_warnings

MODELS_TIMEOUT = 20.0  # `wholerepo models` answers quickly or not at all


@click.command("models", short_help="List the models the endpoint serves, with their windows.")
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="OpenAI-compatible endpoint [default: https://api.deepseek.com].",
)
@click.option("--api-key-env", metavar="VAR", default=None, help="Read the API key from VAR.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help=f"Give up after S seconds [default: {MODELS_TIMEOUT:g}].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def models_command(ctx: click.Context, /, **params: Any) -> None:
    """List the model ids the endpoint serves (and its window where it reports one).

    \b
    Examples:
      wholerepo models
      wholerepo models --base-url http://127.0.0.1:8000/v1    a vLLM server: shows max_model_len
    """
    with handled_errors(params["debug"]):
        from ..llm.openai_compat import OpenAICompatible
        from ..llm.policy import Endpoint
        from ..packer import settings_for
        from ..reviewer import run_blocking
        from ..sanitize import one_line
        from .output import register_secret, write_stdout

        flags = flag_overrides(ctx, params)
        flags.setdefault("timeout", MODELS_TIMEOUT)
        settings = settings_for(Path("."), flags, repository="none")
        print_warnings(settings.warnings)
        endpoint = Endpoint.from_settings(settings)
        register_secret(endpoint.api_key)
        chat = OpenAICompatible(endpoint)
        models = run_blocking(chat.list_models(timeout=settings.timeout), chat)
        lines = [
            # Ids are the endpoint's text: no escape sequences reach the terminal.
            one_line(m.id, 500) + (f"\tmax_model_len={m.max_model_len}" if m.max_model_len else "")
            for m in sorted(models, key=lambda m: m.id)
        ]
        write_stdout("".join(f"{line}\n" for line in lines))
