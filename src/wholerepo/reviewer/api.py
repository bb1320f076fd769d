"""``wholerepo.review()``: the review as a function, for programs that embed wholerepo."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..llm.base import EventSink
from ..settings import FIELDS, Settings
from .plan import plan, probe
from .result import ReviewResult
from .run import run, run_blocking


def review(
    path: str | os.PathLike[str] = ".",
    settings: Settings | None = None,
    *,
    base: str | None = None,
    tool_version: str = "",
    on_event: EventSink | None = None,
    **options: Any,
) -> ReviewResult:
    """Review the repository (or directory) at ``path`` and return the verified findings.

    ``options`` are settings (``model=``, ``base_url=``, ``budget=``...), applied over the user's
    configuration file, the repository's (as far as it is trusted) and the environment, as the
    CLI applies its flags. The key comes from the environment, as for the CLI. An endpoint that
    fails raises its EndpointError; a reply cut short returns a result marked ``partial``.
    """
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint
    from ..packer import settings_for

    unknown = sorted(set(options) - FIELDS)
    if unknown:
        raise TypeError(f"review() got an unexpected keyword argument {unknown[0]!r}")
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"path is not a directory: {root}")
    if settings is None:
        settings = settings_for(root, options)
    elif options:
        settings = replace(settings, **options)
    endpoint = Endpoint.from_settings(settings)
    found = run_blocking(probe(settings, OpenAICompatible(endpoint)))
    p = plan(root, settings, found.window, model=found.model, base=base)
    chat = OpenAICompatible(replace(endpoint, model=found.model), on_event=on_event)
    if not tool_version:
        from .. import __version__

        tool_version = str(__version__)
    outcome = run_blocking(run(p, chat, tool_version=tool_version, on_event=on_event), chat)
    if outcome.result is None or (outcome.error is not None and not outcome.result.partial):
        assert outcome.error is not None
        raise outcome.error
    return outcome.result
