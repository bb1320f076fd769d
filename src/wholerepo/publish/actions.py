"""The GitHub Actions side: the environment, the event that started the job, outputs and notices.

pr-review runs on ``pull_request``, ``pull_request_target`` and ``issue_comment`` (a
``/wholerepo review`` comment on a pull request), or locally with ``--repo OWNER/NAME --pr N``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli.output import scrub
from ..errors import UsageError
from ..sanitize import one_line
from .github import DEFAULT_API_URL, graphql_url_for

EVENTS = ("pull_request", "pull_request_target", "issue_comment")
COMMAND = re.compile(r"^\s*/wholerepo\s+review\b(?P<rest>[^\n]*)", re.MULTILINE)
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class Environment:
    """What the job's environment says (or the flags, run locally)."""

    repository: str  # OWNER/NAME
    token: str | None
    api_url: str
    graphql_url: str
    workspace: Path
    event_name: str  # one of EVENTS, or "local"
    event: Mapping[str, Any]
    step_summary: Path | None
    output_file: Path | None
    in_actions: bool

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repository.split("/", 1)[1]


@dataclass(frozen=True)
class Trigger:
    """Why this run happens: the event, and for a comment command who asked."""

    event_name: str
    action: str | None
    pr_number: int
    before: str | None = None  # synchronize: the head before the push
    after: str | None = None
    commenter: str | None = None  # issue_comment: who wrote the command
    commenter_is_bot: bool = False
    command: str | None = None  # the command's text after "/wholerepo review"
    pull_request: Mapping[str, Any] | None = None  # the event's PR object, when it has one


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str
    base_sha: str
    base_ref: str
    head_ref: str
    head_repo: str | None  # None: the fork was deleted
    base_repo: str
    html_url: str
    title: str
    state: str = "open"  # "closed" once merged or closed

    @property
    def from_fork(self) -> bool:
        return self.head_repo != self.base_repo

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> PullRequest:
        head, base = data.get("head") or {}, data.get("base") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        try:
            return cls(
                number=int(data["number"]),
                head_sha=str(head["sha"]),
                base_sha=str(base["sha"]),
                base_ref=str(base.get("ref") or ""),
                head_ref=str(head.get("ref") or ""),
                head_repo=str(head_repo) if head_repo else None,
                base_repo=str((base.get("repo") or {}).get("full_name") or ""),
                html_url=str(data.get("html_url") or ""),
                title=str(data.get("title") or ""),
                state=str(data.get("state") or "open"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"the pull request's data lacks {exc}") from exc


def environment(
    env: Mapping[str, str] | None = None, *, repo: str | None = None, pr: int | None = None
) -> tuple[Environment, Trigger]:
    """The environment and trigger, from ``GITHUB_*`` variables or from ``--repo`` and ``--pr``."""
    environ = os.environ if env is None else env
    in_actions = environ.get("GITHUB_ACTIONS") == "true" or bool(environ.get("GITHUB_EVENT_PATH"))
    api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    graphql_url = (environ.get("GITHUB_GRAPHQL_URL") or graphql_url_for(api_url)).rstrip("/")
    token = (environ.get("GITHUB_TOKEN") or "").strip() or None
    workspace = Path(environ.get("GITHUB_WORKSPACE") or ".")
    summary = environ.get("GITHUB_STEP_SUMMARY")
    output = environ.get("GITHUB_OUTPUT")
    common: dict[str, Any] = {
        "token": token,
        "api_url": api_url,
        "graphql_url": graphql_url,
        "workspace": workspace,
        "step_summary": Path(summary) if summary else None,
        "output_file": Path(output) if output else None,
        "in_actions": in_actions,
    }
    if repo is not None or pr is not None:
        if repo is None or pr is None:
            raise UsageError("--repo and --pr go together", "e.g. --repo octo/hello --pr 12")
        if not _REPO.match(repo):
            raise UsageError(f"--repo {repo!r} is not OWNER/NAME")
        return (
            Environment(repository=repo, event_name="local", event={}, **common),
            Trigger("local", None, pr),
        )
    name = environ.get("GITHUB_EVENT_NAME")
    path = environ.get("GITHUB_EVENT_PATH")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not name or not path:
        raise UsageError(
            "not inside a GitHub Actions job (GITHUB_EVENT_NAME and GITHUB_EVENT_PATH are not set)",
            "run locally with --repo OWNER/NAME --pr N",
        )
    if name not in EVENTS:
        raise UsageError(
            f"pr-review runs on {', '.join(EVENTS)} events, not {name}",
            "use `wholerepo review` for pushes, schedules and manual runs",
        )
    if not _REPO.match(repository):
        raise UsageError(f"GITHUB_REPOSITORY {repository!r} is not OWNER/NAME")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the event file {path}: {exc}") from exc
    if not isinstance(event, dict):
        raise UsageError(f"the event file {path} holds no JSON object")
    return (
        Environment(repository=repository, event_name=name, event=event, **common),
        trigger_of(name, event),
    )


def trigger_of(name: str, event: Mapping[str, Any]) -> Trigger:
    """The trigger an event describes; a comment that is no command has ``command`` None."""
    action = event.get("action") if isinstance(event.get("action"), str) else None
    if name == "issue_comment":
        issue = event.get("issue") or {}
        comment = event.get("comment") or {}
        user = comment.get("user") or {}
        text = comment.get("body")
        body = text if isinstance(text, str) else ""
        match = COMMAND.search(body) if issue.get("pull_request") else None
        return Trigger(
            name,
            action,
            int(issue.get("number") or 0),
            commenter=str(user.get("login") or "") or None,
            commenter_is_bot=user.get("type") == "Bot",
            command=one_line(match.group("rest"), 200) if match else None,
        )
    pr = event.get("pull_request") or {}
    return Trigger(
        name,
        action,
        int(pr.get("number") or event.get("number") or 0),
        before=event.get("before") if isinstance(event.get("before"), str) else None,
        after=event.get("after") if isinstance(event.get("after"), str) else None,
        pull_request=pr or None,
    )


# -- what a job shows and hands on -----------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotate(kind: str, message: str, in_actions: bool) -> None:
    """A notice or warning: a workflow command inside Actions, a plain line elsewhere."""
    text = scrub(message)
    if in_actions:
        print(f"::{kind}::{_escape(text)}", file=sys.stderr, flush=True)
    else:
        print(f"wholerepo: {kind}: {text}", file=sys.stderr, flush=True)


def set_outputs(path: Path | None, values: Mapping[str, str]) -> None:
    """Append step outputs to ``GITHUB_OUTPUT`` (multi-line values with a random delimiter)."""
    if path is None:
        return
    lines = []
    for key, value in values.items():
        value = scrub(value)
        if "\n" in value:
            delimiter = f"wholerepo_{secrets.token_hex(8)}"
            lines.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{key}={value}\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def append_summary(path: Path | None, markdown: str) -> None:
    """Add ``markdown`` to the job's summary page (``GITHUB_STEP_SUMMARY``)."""
    if path is None:
        return
    with path.open("a", encoding="utf-8") as fh:
        fh.write(scrub(markdown).rstrip("\n") + "\n")
