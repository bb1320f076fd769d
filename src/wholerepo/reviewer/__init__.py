"""The reviewer: probe the endpoint, plan the request (plan.py), send it and verify the reply
(run.py); prompts, the reply's findings and the ReviewResult live beside them."""

from __future__ import annotations

from .plan import (
    MODELS_TIMEOUT,
    TEMPLATE_MARGIN,
    Plan,
    Probe,
    PromptTooLargeError,
    Window,
    dry_run_report,
    dry_run_text,
    left_out,
    left_out_text,
    plan,
    plan_diff,
    probe,
)
from .result import NotSent, ReviewResult
from .run import (
    Outcome,
    drift_warning,
    exit_code,
    failing,
    interrupted,
    outcome_of,
    probe_blocking,
    review_blocking,
    run,
    run_blocking,
)

__all__ = [
    "MODELS_TIMEOUT",
    "TEMPLATE_MARGIN",
    "NotSent",
    "Outcome",
    "Plan",
    "Probe",
    "PromptTooLargeError",
    "ReviewResult",
    "Window",
    "drift_warning",
    "dry_run_report",
    "dry_run_text",
    "exit_code",
    "failing",
    "interrupted",
    "left_out",
    "left_out_text",
    "outcome_of",
    "plan",
    "plan_diff",
    "probe",
    "probe_blocking",
    "review_blocking",
    "run",
    "run_blocking",
]
