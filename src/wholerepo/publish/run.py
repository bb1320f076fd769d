"""The pr-review flow: from the event to one review, one living summary and threads kept current.

1. Who asked and about which pull request (the event, or --repo/--pr); comment commands only
   from users with write permission; a fork's pull request without secrets ends with a notice.
2. The settings: flags and WHOLEREPO_* variables, then the BASE branch's configuration, prompt
   file and REVIEW.md (never the head's: ``repository="none"`` for the checkout).
3. What GitHub remembers: our identity, our summary comment's state, our review threads.
4. The review: the whole head in context, the diff as focus (the whole pull request on a first
   run, a force-push or a command; what changed since the last reviewed head otherwise).
5. Reconcile: earlier findings re-verified at the new head (fixed, still open, moved), this
   run's findings matched to them (never posted twice), dismissals honoured.
6. Post, serially: one review with the new inline comments (re-sent without the comments GitHub
   refuses), a reply and a resolved thread for each fix, the summary edited in place.
7. Reports, step outputs and the step summary; the exit code of ``review --fail-on``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UsageError
from ..llm.policy import find_api_key, is_deepseek
from ..reviewer.findings import Finding, finding_sort_key, severity_rank, verify
from ..reviewer.result import ReviewResult
from ..sanitize import one_line
from ..settings import BUILTIN_PROMPTS, Settings, load_settings
from . import actions, inline, state, summary, workspace
from .actions import Environment, PullRequest, Trigger
from .github import GitHub, GitHubRefused, Pacing
from .hunks import DiffMap, from_api, from_git
from .state import State, Thread, Threads, Tracked

Events = Callable[[str], None]
REVIEW_MD = "REVIEW.md"
REVIEW_MD_LIMIT = 20_000
CONFIG_FILES = (".wholerepo.toml", "pyproject.toml")
WRITE_PERMISSIONS = ("admin", "write")
API_FILES_LIMIT = 3000  # GET /pulls/{n}/files lists at most this many files

THREADS_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $after: String) {
  viewer { login }
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes {
          id
          isResolved
          isOutdated
          resolvedBy { login }
          comments(first: 1) {
            nodes {
              fullDatabaseId
              body
              author { login }
              reactions(content: THUMBS_DOWN) { totalCount }
            }
          }
        }
      }
    }
  }
}
"""
RESOLVE_MUTATION = """
mutation($thread: ID!) {
  resolveReviewThread(input: {threadId: $thread}) { thread { id isResolved } }
}
"""


@dataclass(frozen=True)
class Options:
    """What the command line asked for, beyond the settings."""

    flags: Mapping[str, Any]
    path: Path | None = None  # the checkout; None: GITHUB_WORKSPACE or "."
    inline: bool = True
    max_inline: int = 10
    min_inline_severity: str = "low"
    dry_run: bool = False
    output_dir: Path | None = None
    sarif_file: Path | None = None
    pacing: Pacing = field(default_factory=Pacing)
    quiet: bool = False


@dataclass
class Outcome:
    """What a run did, for the command to print and exit with."""

    exit_code: int = 0
    posted: dict[str, Any] = field(default_factory=dict)  # dry run: what would be posted
    requests: dict[str, int] = field(default_factory=dict)
    error: Exception | None = None


@dataclass
class Remembered:
    identity: str | None = None
    comment_id: int | None = None
    comment_body: str = ""
    duplicates: list[int] = field(default_factory=list)  # more summaries of ours (concurrent runs)
    state: State = field(default_factory=State)
    threads: list[Thread] = field(default_factory=list)


# -- 1. who asked --------------------------------------------------------------------------------


def pull_request_for(gh: GitHub, env: Environment, trigger: Trigger) -> PullRequest:
    if trigger.pull_request is not None and trigger.event_name in ("pull_request", "pull_request_target"):
        return PullRequest.of(trigger.pull_request)
    data = gh.get(f"repos/{env.repository}/pulls/{trigger.pr_number}")
    return PullRequest.of(data)


def may_command(gh: GitHub, env: Environment, login: str) -> bool:
    """Whether ``login`` has write permission on the repository (admin, maintain or write)."""
    try:
        data = gh.get(f"repos/{env.repository}/collaborators/{login}/permission")
    except GitHubRefused as exc:
        if exc.status in (403, 404):
            return False
        raise
    return str(data.get("permission") or "") in WRITE_PERMISSIONS


# -- 2. settings from the base branch ------------------------------------------------------------


def base_text(root: Path, gh: GitHub, env: Environment, base_sha: str, path: str, local: bool) -> str | None:
    """A file of the base commit: from git when the commit is here, else from the contents API."""
    if local:
        return workspace.blob(root, base_sha, path)
    try:
        data = gh.get(f"repos/{env.repository}/contents/{path}", {"ref": base_sha})
    except GitHubRefused as exc:
        if exc.status == 404:
            return None
        raise
    if not isinstance(data, dict) or data.get("type") != "file" or not data.get("content"):
        return None
    import base64

    try:
        raw = base64.b64decode(str(data["content"]))
    except ValueError:
        return None
    return None if b"\0" in raw[:8192] else raw.decode("utf-8", "replace")


def base_settings(
    flags: Mapping[str, Any],
    read: Callable[[str], str | None],
    scratch: Path,
    repo_root: Path,
) -> tuple[Settings, list[str]]:
    """Settings with the base branch's configuration as the repository layer (the usual allow-list),
    its REVIEW.md as instructions, and a prompt file read from the base branch too."""
    notes: list[str] = []
    config_dir = scratch / "base"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        text = read(name)
        if text is not None:
            (config_dir / name).write_text(text, encoding="utf-8")
    settings = load_settings([config_dir], flags=dict(flags))
    warnings = tuple(w.replace(str(config_dir) + "/", "base branch ") for w in settings.warnings)
    settings = replace(settings, warnings=warnings)
    review_md = read(REVIEW_MD)
    if review_md and review_md.strip():
        text = review_md.strip()[:REVIEW_MD_LIMIT]
        joined = "\n\n".join(t for t in (settings.instructions, text) if t)
        settings = replace(settings, instructions=joined)
        notes.append("REVIEW.md of the base branch reached the model as instructions")
    if settings.prompt not in BUILTIN_PROMPTS:
        settings = _base_prompt(settings, read, scratch, repo_root, notes)
    return settings, notes


def _base_prompt(
    settings: Settings, read: Callable[[str], str | None], scratch: Path, repo_root: Path, notes: list[str]
) -> Settings:
    """A prompt template named by a path inside the repository is read from the base branch."""
    given = Path(settings.prompt)
    if given.is_absolute():
        try:
            relative = given.resolve().relative_to(repo_root.resolve())
        except ValueError:
            return settings  # the user's own file outside the repository: trusted as it is
    else:
        relative = given
    text = read(relative.as_posix())
    if text is None:
        raise UsageError(
            f"{settings.named('prompt')} {settings.prompt!r}: no such file on the base branch",
            "a pull request's prompt template is read from its base branch",
        )
    target = scratch / "prompt" / relative.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    notes.append(f"the prompt template {relative.as_posix()} was read from the base branch")
    return replace(settings, prompt=str(target), prompt_base=None)


def key_missing(settings: Settings) -> str | None:
    """The variable a needed model key should be in, when it is not set."""
    key, names = find_api_key(settings.base_url, settings.api_key_env)
    if key is None and (is_deepseek(settings.base_url) or settings.api_key_env):
        return names[0]
    return None


# -- 3. what GitHub remembers ---------------------------------------------------------------------


def remembered(gh: GitHub, env: Environment, number: int) -> Remembered:
    """Our identity, threads and summary comment (with its state)."""
    memory = Remembered()
    if gh.token:
        after: str | None = None
        for _page in range(50):
            data = gh.graphql(
                THREADS_QUERY, {"owner": env.owner, "name": env.name, "number": number, "after": after}
            )
            memory.identity = ((data or {}).get("viewer") or {}).get("login") or memory.identity
            pr = (((data or {}).get("repository") or {}).get("pullRequest")) or {}
            connection = pr.get("reviewThreads") or {}
            for node in connection.get("nodes") or []:
                memory.threads.append(_thread(node))
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
    for comment in gh.iterate(f"repos/{env.repository}/issues/{number}/comments"):
        body = comment.get("body") or ""
        author = (comment.get("user") or {}).get("login")
        if state.SUMMARY_MARKER in body and state.same_login(author, memory.identity):
            if memory.comment_id is not None:
                memory.duplicates.append(int(comment["id"]))
                continue
            memory.comment_id = int(comment["id"])
            memory.comment_body = body
            memory.state = state.decode(body) or State()
    return memory


def _thread(node: Mapping[str, Any]) -> Thread:
    comments = ((node.get("comments") or {}).get("nodes")) or [{}]
    first = comments[0] or {}
    return Thread(
        id=str(node.get("id")),
        resolved=bool(node.get("isResolved")),
        resolved_by=((node.get("resolvedBy") or {}).get("login")),
        outdated=bool(node.get("isOutdated")),
        comment_id=_int(first.get("fullDatabaseId")),
        author=(first.get("author") or {}).get("login"),
        body=str(first.get("body") or ""),
        thumbs_down=int(((first.get("reactions") or {}).get("totalCount")) or 0),
    )


def _int(value: Any) -> int | None:
    """A BigInt as GitHub sends it (a string), or an int."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- 5. reconciling runs ---------------------------------------------------------------------------


def code_of(f: Finding, lines: Sequence[str]) -> str:
    return f.quote if f.quote else "\n".join(lines[f.start_line - 1 : f.end_line])


def by_quote(t: Tracked, files: Mapping[str, str], renames: Mapping[str, str]) -> Finding | None:
    """An earlier finding found again by its code alone (when the earlier head is gone)."""
    path = t.path if t.path in files else renames.get(t.path, t.path)
    if path not in files or not t.code:
        return None
    item = {
        "path": path,
        "start_line": t.start_line,
        "end_line": t.end_line,
        "severity": t.severity,
        "category": t.category,
        "title": t.title,
        "body": t.body,
        "quote": t.code,
    }
    checked = verify([item], {path: files[path]})
    found = checked.verified[0] if checked.verified else None
    return found if found is not None and found.quote is not None else None


@dataclass(frozen=True)
class Recheck:
    """Earlier findings checked against the new head: the lines followed through git's diff from
    the head they were reported at (changed or deleted lines: fixed, and by which commit), or,
    when that head is gone (a force-push), found again by their code."""

    root: Path
    previous: str | None
    head: str
    files: Mapping[str, str]
    listed: frozenset[str]
    renames: Mapping[str, str]

    def __call__(self, t: Tracked) -> tuple[str, Finding | None, str | None]:
        """("open", where it is now, None) | ("fixed", None, commit) | ("unknown", as it was, None)."""
        prev = self.previous
        if prev is not None and (prev == self.head or workspace.has_commit(self.root, prev)):
            moved = (
                (t.path, t.start_line, t.end_line)
                if prev == self.head
                else workspace.follow(self.root, prev, self.head, t.path, t.start_line, t.end_line)
            )
            if moved is None:
                return "fixed", None, self.fixed_in(t, prev)
            path, start, end = moved
            if path not in self.files:
                return (
                    ("unknown", self._as_was(t), None) if path in self.listed else ("fixed", None, self.head)
                )
            return "open", self._as_was(replace(t, path=path, start_line=start, end_line=end)), None
        found = by_quote(t, self.files, self.renames)
        if found is not None:
            return "open", replace(found, body=t.body), None
        if t.path in self.listed and t.path not in self.files:
            return "unknown", self._as_was(t), None
        return "fixed", None, self.head

    @staticmethod
    def _as_was(t: Tracked) -> Finding:
        return Finding(
            t.path,
            t.start_line,
            t.end_line,
            t.severity,
            t.category,
            t.title,
            t.body,
            None,
            t.code or None,
            fingerprint=t.fingerprint,
        )

    def fixed_in(self, t: Tracked, prev: str) -> str:
        """The first commit after ``prev`` that changed the finding's lines."""
        where: tuple[str, int, int] | None = (t.path, t.start_line, t.end_line)
        older = prev
        for commit in workspace.commits_between(self.root, prev, self.head, t.path):
            assert where is not None
            where = workspace.follow(self.root, older, commit, *where)
            if where is None:
                return commit
            older = commit
        return self.head


@dataclass
class Reconciled:
    open: list[Finding]
    new: set[str]
    tracked: dict[str, Tracked]
    fixed_now: list[Tracked]
    dismissed: list[Tracked]
    not_rechecked: list[str]


def reconcile(
    previous: State,
    threads: Threads,
    identity: str | None,
    found: Sequence[Finding],
    files: Mapping[str, str],
    diff: DiffMap,
    head: str,
    recheck: Callable[[Tracked], tuple[str, Finding | None, str | None]],
) -> Reconciled:
    """Merge this run's findings with what earlier runs reported."""
    tracked = previous.by_fingerprint()
    changed = diff.changed()
    still: dict[str, Finding] = {}
    fixed_now: list[Tracked] = []
    not_rechecked: list[str] = []
    for fp, t in list(tracked.items()):
        if t.status != "open":
            continue
        status, again, fixed_in = recheck(t)
        if status == "fixed":
            done = replace(t, status="fixed", fixed_in=fixed_in)
            tracked[fp] = done
            fixed_now.append(done)
            continue
        assert again is not None
        if status == "unknown":
            not_rechecked.append(t.path)  # in the repository but not sent this time
        still[fp] = replace(again, fingerprint=fp, in_diff=None)
        tracked[fp] = replace(t, path=again.path, start_line=again.start_line, end_line=again.end_line)
    open_now: dict[str, Finding] = {}
    new: set[str] = set()
    for f in found:
        fp = f.fingerprint
        if fp not in tracked:
            alias = _same_as(f, tracked, still)
            if alias is not None:
                fp = alias
        if fp in tracked and tracked[fp].status == "fixed" and tracked[fp] in fixed_now:
            # Reported again at the same head: it was not fixed after all.
            fixed_now.remove(tracked[fp])
            tracked[fp] = replace(tracked[fp], status="open", fixed_in=None)
        lines = files.get(f.path, "").split("\n")
        if fp not in tracked:
            new.add(fp)
            if fp in threads.ours:  # posted by a run whose summary was lost
                tracked[fp] = replace(Tracked.of(f, code_of(f, lines), head), posted=True)
            else:
                tracked[fp] = Tracked.of(replace(f, fingerprint=fp), code_of(f, lines), head)
        elif tracked[fp].status == "fixed":
            new.add(fp)  # back after a fix
            tracked[fp] = replace(
                tracked[fp],
                status="open",
                fixed_in=None,
                path=f.path,
                start_line=f.start_line,
                end_line=f.end_line,
                code=code_of(f, lines),
            )
        open_now[fp] = replace(f, fingerprint=fp)
    for fp, f in still.items():
        open_now.setdefault(fp, f)
    dismissed: list[Tracked] = []
    result: list[Finding] = []
    for fp, f in open_now.items():
        span = changed.get(f.path, frozenset())
        f = replace(f, in_diff=any(f.start_line <= n <= f.end_line for n in span))
        why = tracked[fp].dismissed or threads.dismissed(fp, identity)
        if tracked[fp].posted or fp in threads.ours:
            tracked[fp] = replace(tracked[fp], posted=True)
        tracked[fp] = replace(tracked[fp], in_diff=f.in_diff, severity=f.severity, dismissed=why)
        if why:
            dismissed.append(tracked[fp])
            new.discard(fp)
            continue
        result.append(f)
    result.sort(key=finding_sort_key)
    return Reconciled(result, new, tracked, fixed_now, dismissed, not_rechecked)


def _same_as(f: Finding, tracked: Mapping[str, Tracked], still: Mapping[str, Finding]) -> str | None:
    """An open earlier finding this one restates (same file and category, overlapping lines)."""
    for fp, g in still.items():
        t = tracked[fp]
        if (
            g.path == f.path
            and t.category == f.category
            and g.start_line <= f.end_line
            and f.start_line <= g.end_line
        ):
            return fp
    return None


# -- 6. posting ------------------------------------------------------------------------------------


def post_review(
    gh: GitHub,
    env: Environment,
    pr: PullRequest,
    planned: list[inline.Planned],
    open_count: int,
    refetch: Callable[[], DiffMap],
    events: Events,
) -> tuple[list[inline.Planned], list[inline.Held]]:
    """One review (event COMMENT) holding the inline comments; what GitHub refuses is left out and
    the review sent again, never dropped. Returns what was posted and what was refused."""
    path = f"repos/{env.repository}/pulls/{pr.number}/reviews"
    import secrets

    marker = state.review_marker(pr.head_sha, secrets.token_hex(6))
    refused: list[inline.Held] = []

    def created() -> Any:
        for review in gh.iterate(path):
            if marker in (review.get("body") or ""):
                return review
        return None

    attempt = planned
    for round_ in range(3):
        if round_ == 2:
            refused += [inline.Held(p.finding, "GitHub refused the inline comment") for p in attempt]
            attempt = []
        body = _review_body(len(attempt), open_count, refused) + "\n\n" + marker
        payload = {
            "commit_id": pr.head_sha,
            "event": "COMMENT",
            "body": body,
            "comments": [p.comment() for p in attempt],
        }
        try:
            gh.post(path, payload, created=created)
            return attempt, refused
        except GitHubRefused as exc:
            if exc.status != 422 or round_ == 2:
                raise
            events(
                f"GitHub refused the review (422: {exc.message});"
                " sending it again without the refused comments"
            )
            named = {p.finding.path for p in attempt if p.finding.path in exc.message}
            attempt, dropped = inline.revalidate(attempt, refetch(), named)
            refused += dropped
    return [], refused  # pragma: no cover - the loop returns or raises


def _review_body(comments: int, open_count: int, refused: Sequence[inline.Held]) -> str:
    text = (
        f"wholerepo: {comments} new finding{'s' if comments != 1 else ''} on changed lines."
        f" The summary comment lists all {open_count} open findings, those outside the diff too."
    )
    if refused:
        text += f" {len(refused)} inline comment(s) GitHub would not place are in the summary."
    return text


def close_fixed(
    gh: GitHub, env: Environment, pr: PullRequest, fixed: Sequence[Tracked], threads: Threads
) -> int:
    """Reply "fixed in <commit>" on our thread of each fixed finding and resolve it."""
    done = 0
    for t in fixed:
        thread = threads.ours.get(t.fingerprint)
        if thread is None or thread.resolved or thread.comment_id is None:
            continue
        sha = t.fixed_in or pr.head_sha
        marker = state.fixed_marker(t.fingerprint)
        parent = thread.comment_id

        def created(parent: int = parent, marker: str = marker) -> Any:
            for comment in gh.iterate(f"repos/{env.repository}/pulls/{pr.number}/comments"):
                if comment.get("in_reply_to_id") == parent and marker in (comment.get("body") or ""):
                    return comment
            return None

        gh.post(
            f"repos/{env.repository}/pulls/{pr.number}/comments/{parent}/replies",
            {"body": f"Fixed in {sha[:7]} ({sha}). {marker}"},
            created=created,
        )
        gh.graphql(RESOLVE_MUTATION, {"thread": thread.id})
        done += 1
    return done


def head_moved(gh: GitHub, env: Environment, pr: PullRequest) -> str | None:
    """The pull request's head now, when it is no longer the commit just reviewed (a push landed
    during the review, or the event was stale): then nothing is posted."""
    data = gh.get(f"repos/{env.repository}/pulls/{pr.number}")
    now = str(((data or {}).get("head") or {}).get("sha") or "")
    return now if now and now != pr.head_sha else None


def post_summary(gh: GitHub, env: Environment, pr: PullRequest, memory: Remembered, body: str) -> None:
    """Edit our summary comment in place, or create the one comment if there is none."""
    if memory.comment_id is not None:
        if memory.comment_body != body:
            gh.patch(f"repos/{env.repository}/issues/comments/{memory.comment_id}", {"body": body})
        # Two runs that started at once may each have made one: the oldest is kept.
        for extra in memory.duplicates:
            try:
                gh.request("DELETE", f"repos/{env.repository}/issues/comments/{extra}")
            except GitHubRefused as exc:
                if exc.status != 404:  # already gone
                    raise
        return
    path = f"repos/{env.repository}/issues/{pr.number}/comments"

    def created() -> Any:
        for comment in gh.iterate(path):
            if state.SUMMARY_MARKER in (comment.get("body") or "") and state.same_login(
                (comment.get("user") or {}).get("login"), memory.identity
            ):
                return comment
        return None

    gh.post(path, {"body": body}, created=created)


# -- 7. outputs -------------------------------------------------------------------------------------


def highest(findings: Sequence[Finding]) -> str:
    if not findings:
        return "none"
    return max(findings, key=lambda f: severity_rank(f.severity)).severity


def write_reports(
    result: ReviewResult, output_dir: Path | None, sarif_file: Path | None, private: bool
) -> dict[str, str]:
    """review.json / review.md / review.sarif; the step outputs that name them."""
    from ..cli.output import write_atomic
    from ..report import FORMAT_FILENAMES, render

    outputs: dict[str, str] = {}
    if output_dir is not None:
        for fmt, name in FORMAT_FILENAMES.items():
            target = output_dir / name
            write_atomic(target, render(fmt, result), private=private)
            key = {"json": "report-json", "markdown": "report-markdown", "sarif": "sarif-file"}[fmt]
            outputs[key] = str(target)
    if sarif_file is not None:
        write_atomic(sarif_file, render("sarif", result), private=private)
        outputs["sarif-file"] = str(sarif_file)
    return outputs


def default_output_dir(env_vars: Mapping[str, str], in_actions: bool) -> Path | None:
    runner_temp = env_vars.get("RUNNER_TEMP")
    if in_actions:
        return Path(runner_temp or tempfile.gettempdir()) / "wholerepo"
    return None


def short(text: str) -> str:
    return one_line(text, 300)


# -- the whole run ----------------------------------------------------------------------------------


def pr_review(
    env: Environment,
    trigger: Trigger,
    options: Options,
    *,
    environ: Mapping[str, str],
    events: Events,
    progress: Any = None,
) -> Outcome:
    """Review one pull request and publish the result; see the module's docstring."""
    gh = GitHub(
        env.token,
        env.api_url,
        env.graphql_url,
        pacing=options.pacing,
        on_event=events,
        user_agent=f"wholerepo/{__version__}",
    )
    outcome = Outcome()
    try:
        _run(Job(gh, env, trigger, options, outcome, environ, events, progress))
    finally:
        outcome.requests = dict(gh.calls)
        gh.close()
    return outcome


@dataclass(frozen=True)
class Job:
    """One run's surroundings: the client, the environment, what was asked, where to report."""

    gh: GitHub
    env: Environment
    trigger: Trigger
    options: Options
    outcome: Outcome
    environ: Mapping[str, str]
    events: Events
    progress: Any


def _run(job: Job) -> None:
    gh, env, trigger, options, events = job.gh, job.env, job.trigger, job.options, job.events

    def notice(message: str) -> None:
        actions.annotate("notice", message, env.in_actions)

    if trigger.event_name == "issue_comment":
        if trigger.command is None or trigger.action not in (None, "created"):
            notice("the comment is not a /wholerepo review command: nothing to do")
            return
        if trigger.commenter_is_bot or not trigger.commenter:
            notice("a /wholerepo review command from a bot is ignored")
            return
        if not may_command(gh, env, trigger.commenter):
            notice(
                f"/wholerepo review from {trigger.commenter} ignored:"
                " only users with write permission may ask"
            )
            return
    elif trigger.event_name != "local" and trigger.action == "closed":
        notice("the pull request is closed: nothing to review")
        return
    if not env.token and not options.dry_run:
        raise UsageError("no GitHub token: GITHUB_TOKEN is not set", "the Action passes github-token for you")
    if not env.token:
        events("no GITHUB_TOKEN: reading the pull request without one (public repositories only)")
    pr = pull_request_for(gh, env, trigger)
    if pr.state == "closed":  # a command on a closed pull request, or --pr naming one
        notice(f"pull request #{pr.number} is closed: nothing to review")
        return
    root = workspace.top_level(options.path or env.workspace)
    with tempfile.TemporaryDirectory(prefix="wholerepo-pr-") as scratch_name:
        scratch = Path(scratch_name)
        base_local = workspace.ensure_commit(root, pr.base_sha, depth=None)
        settings, notes = base_settings(
            options.flags,
            lambda name: base_text(root, gh, env, pr.base_sha, name, base_local),
            scratch,
            root,
        )
        for warning in settings.warnings:
            events(f"warning: {warning}")
        missing = key_missing(settings)
        if missing is not None:
            if pr.from_fork and trigger.event_name == "pull_request":
                notice(
                    f"pull request #{pr.number} comes from a fork, and GitHub gives a fork's pull_request"
                    f" run no secrets ({missing} is empty): no review. Use pull_request_target (see the"
                    " README) to review forks safely."
                )
                return
            raise UsageError(f"no API key: {missing} is not set", "pass api-key to the Action (a secret)")
        with workspace.head_checkout(root, pr.head_sha, pr.number) as (head_dir, note):
            if note:
                notes.append(note)
            _review_and_publish(job, pr, root, head_dir, settings, notes, base_local)


def _focus(root: Path, gh: GitHub, env: Environment, pr: PullRequest, base_local: bool) -> str | None:
    """The merge base of the pull request (what GitHub's diff starts from), present locally."""
    if base_local:
        found = workspace.merge_base(root, pr.base_sha, pr.head_sha)
        if found is not None:
            return found
    try:
        data = gh.get(f"repos/{env.repository}/compare/{pr.base_sha}...{pr.head_sha}", {"per_page": 1})
    except GitHubRefused:
        return None
    sha = ((data or {}).get("merge_base_commit") or {}).get("sha")
    if isinstance(sha, str) and workspace.ensure_commit(root, sha, depth=1):
        return sha
    return None


def _review_and_publish(
    job: Job,
    pr: PullRequest,
    root: Path,
    head_dir: Path,
    settings: Settings,
    notes: list[str],
    base_local: bool,
) -> None:
    gh, env, trigger, options, events = job.gh, job.env, job.trigger, job.options, job.events
    outcome, environ, progress = job.outcome, job.environ, job.progress
    from ..cli.output import register_secret
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint
    from ..reviewer import failing, plan, probe_blocking, review_blocking

    memory = remembered(gh, env, pr.number)
    previous = memory.state
    merge_base = _focus(root, gh, env, pr, base_local)
    mode, focus = "full review", merge_base
    if previous.head and previous.head != pr.head_sha and trigger.command is None:
        workspace.ensure_commit(root, previous.head)
        ancestor = workspace.is_ancestor(root, previous.head, pr.head_sha)
        if ancestor:
            mode, focus = f"incremental review since {previous.head[:7]}", previous.head
        else:
            mode = "full review after a force-push"
    elif trigger.command is not None:
        mode = "full review (asked for by /wholerepo review)"
    if focus is None:
        notes.append("the pull request's merge base is not in the checkout: no diff was sent as focus")

    endpoint = Endpoint.from_settings(settings)
    register_secret(endpoint.api_key)
    for warning in endpoint.warnings:
        events(f"warning: {warning}")
    update = progress.update if progress is not None else None
    found = probe_blocking(settings, OpenAICompatible(endpoint, on_event=events))
    if found.model != endpoint.model:
        endpoint = replace(endpoint, model=found.model)
    # The checkout's .wholerepoignore files and linguist attributes choose what is sent. A pull
    # request that changes them could hide its own files from its review: then none are applied.
    changed = workspace.changed_paths(root, merge_base, pr.head_sha) if merge_base else []
    selection = [c for c in changed if c.rsplit("/", 1)[-1] in (".wholerepoignore", ".gitattributes")]
    if selection:
        notes.append(
            f"this pull request changes {', '.join(sorted(selection)[:3])}: the checkout's"
            " .wholerepoignore files and linguist attributes were not applied, so it cannot hide its"
            " own files from this review"
        )
    p = plan(
        head_dir,
        settings,
        found.window,
        model=found.model,
        base=focus,
        on_progress=update,
        selection_files=not selection,
    )
    events(f"sending {len(p.pack.included):,} files, {p.prompt_tokens:,} prompt tokens to {p.model} ({mode})")
    chat = OpenAICompatible(endpoint, on_event=events, on_progress=update)
    reviewed = review_blocking(p, chat, tool_version=str(__version__), on_event=events)
    if reviewed.result is None:
        assert reviewed.error is not None
        raise reviewed.error
    result = reviewed.result

    diff = _diff_map(gh, env, pr, root, merge_base, events)
    files = p.files
    threads = Threads.of(memory.threads, memory.identity)
    recheck = Recheck(
        root, previous.head, pr.head_sha, files, frozenset(f.path for f in p.pack.files), diff.renames()
    )
    merged = reconcile(previous, threads, memory.identity, result.verified, files, diff, pr.head_sha, recheck)
    head_lines = {path: text.split("\n") for path, text in files.items()}
    candidates = [
        f for f in merged.open if f.fingerprint in merged.new and not merged.tracked[f.fingerprint].posted
    ]
    planned, held = inline.select(
        candidates,
        diff,
        head_lines,
        enabled=options.inline,
        cap=options.max_inline,
        min_severity=options.min_inline_severity,
    )
    posted: list[inline.Planned] = []
    refused: list[inline.Held] = []
    moved = None if options.dry_run else head_moved(gh, env, pr)
    if moved is not None:
        actions.annotate(
            "notice",
            f"the pull request's head moved from {pr.head_sha[:7]} to {moved[:7]} during the review:"
            f" nothing was posted, so no comment lands on an outdated commit (the run for {moved[:7]}"
            " posts its review); the reports and the job summary still hold this one",
            env.in_actions,
        )
    elif options.dry_run:
        outcome.posted["review"] = {
            "commit_id": pr.head_sha,
            "event": "COMMENT",
            "comments": [p_.comment() for p_ in planned],
        }
        posted = planned
    elif planned:
        posted, refused = post_review(
            gh,
            env,
            pr,
            planned,
            len(merged.open),
            lambda: _diff_map(gh, env, pr, root, merge_base, events),
            events,
        )
    for p_ in posted:
        fp = p_.finding.fingerprint
        merged.tracked[fp] = replace(merged.tracked[fp], posted=True)
    held += refused

    dismissed_fps = {t.fingerprint for t in merged.dismissed}
    all_fixed = [t for t in merged.tracked.values() if t.status == "fixed"]
    all_fixed.sort(key=lambda t: (t.fixed_in != pr.head_sha, t.path, t.start_line))
    final = replace(
        result,
        verified=tuple(merged.open),
        base_ref=pr.base_ref or result.base_ref,
        warnings=tuple(result.warnings),
    )
    new_state = State(
        head=pr.head_sha,
        base=pr.base_sha,
        runs=previous.runs + 1,
        findings=tuple(t for t in merged.tracked.values()),
    )
    inline_place = {
        f.fingerprint: (
            "inline comment"
            if f.fingerprint in {q.finding.fingerprint for q in posted}
            else "inline comment (earlier)"
        )
        for f in merged.open
        if merged.tracked[f.fingerprint].posted
    }
    diff_not_sent = sorted(
        path for path, d in diff.files.items() if d.status != "removed" and path not in files
    )
    if merged.not_rechecked:
        notes.append(
            f"{len(set(merged.not_rechecked))} earlier findings sit in files not sent this time:"
            " kept open, not re-checked"
        )
    view = summary.Summary(
        result=final,
        open=merged.open,
        new=frozenset(merged.new),
        inline=inline_place,
        held={h.finding.fingerprint: h.reason for h in held if h.finding.fingerprint not in dismissed_fps},
        fixed=all_fixed,
        dismissed=merged.dismissed,
        head_sha=pr.head_sha,
        blob_url=_html_base(pr, env) + "/blob",
        commit_url=_html_base(pr, env) + "/commit",
        mode=mode,
        diff_files_not_sent=diff_not_sent,
        notes=notes,
    )
    body = summary.render(view, state.encode(new_state))
    if moved is not None:
        pass
    elif options.dry_run:
        outcome.posted["summary"] = body
        outcome.posted["resolve"] = [t.fingerprint for t in merged.fixed_now if t.fingerprint in threads.ours]
    else:
        try:
            close_fixed(gh, env, pr, merged.fixed_now, threads)
            post_summary(gh, env, pr, memory, body)
        except GitHubRefused as exc:
            if exc.status not in (403, 404) or not pr.from_fork:
                raise
            actions.annotate(
                "warning",
                "the token cannot write to this pull request (a fork's pull_request run gets a read-only"
                " token); the reports and the job summary still hold the review",
                env.in_actions,
            )
    output_dir = options.output_dir or default_output_dir(environ, env.in_actions)
    outputs = write_reports(final, output_dir, options.sarif_file, private=not settings.redact)
    outputs.update({"findings": str(len(merged.open)), "highest-severity": highest(merged.open)})
    for key in ("report-json", "report-markdown", "sarif-file"):
        outputs.setdefault(key, "")
    actions.set_outputs(env.output_file, outputs)
    actions.append_summary(env.step_summary, summary.render_visible(view))
    culprit = failing(final, settings.fail_on, settings.fail_on_scope)
    if culprit is not None:
        events(
            f"failing the run (--fail-on {settings.fail_on}): {culprit.severity} {culprit.category} at"
            f" {culprit.path}:{culprit.start_line}: {short(culprit.title)}"
        )
        outcome.exit_code = 1
    if reviewed.error is not None:
        outcome.error = reviewed.error


def _diff_map(
    gh: GitHub, env: Environment, pr: PullRequest, root: Path, merge_base: str | None, events: Events
) -> DiffMap:
    """GitHub's own hunks (the files API), else the local merge-base diff."""
    try:
        entries = gh.paginate(f"repos/{env.repository}/pulls/{pr.number}/files", limit=API_FILES_LIMIT)
    except GitHubRefused as exc:
        events(f"could not list the pull request's files ({exc.one_line()}); using the local diff")
    else:
        listed = from_api(entries)
        if len(entries) < API_FILES_LIMIT or merge_base is None:
            return listed
        # GitHub lists 3,000 files at most: the rest of the diff comes from git. Those files count
        # as changed (in_diff, what was not sent) but take no inline comment.
        local = from_git(workspace.diff_text(root, merge_base, pr.head_sha))
        rest = {
            path: replace(d, hunks=(), has_patch=False)
            for path, d in local.files.items()
            if path not in listed.files
        }
        if rest:
            events(
                f"GitHub lists {API_FILES_LIMIT:,} of the pull request's files; {len(rest):,} more come"
                " from the local diff (no inline comments on them)"
            )
        return DiffMap({**listed.files, **rest}, listed.source)
    if merge_base is not None:
        return from_git(workspace.diff_text(root, merge_base, pr.head_sha))
    return DiffMap({}, "none")


def _html_base(pr: PullRequest, env: Environment) -> str:
    """https://github.com/OWNER/NAME (or the GHES host), from the pull request's own URL."""
    marker = f"/pull/{pr.number}"
    if pr.html_url.endswith(marker):
        return pr.html_url[: -len(marker)]
    host = env.api_url.replace("://api.", "://", 1).removesuffix("/api/v3")
    return f"{host}/{env.repository}"
