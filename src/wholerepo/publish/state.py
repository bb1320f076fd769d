"""What pr-review remembers between runs, kept in hidden markers on GitHub itself.

- The summary comment carries ``<!-- wholerepo:summary -->`` and a state marker: every finding
  seen on the pull request (fingerprint, place, code, status, the inline comment it got), the
  head last reviewed. Only a comment by the token's own identity is read.
- Each inline comment carries ``<!-- wholerepo:finding FINGERPRINT -->``, so the threads alone
  say what was posted even if the summary was deleted.

Model text can never forge a marker: every ``<!`` in it is broken before it is posted
(wholerepo.sanitize.neutralise_markers).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

from ..reviewer.findings import Finding, severity_rank

SUMMARY_MARKER = "<!-- wholerepo:summary -->"
STATE_VERSION = 1
_STATE = re.compile(r"<!-- wholerepo:state v(\d+) ([A-Za-z0-9+/=]+) -->")
_FINDING = re.compile(r"<!-- wholerepo:finding ([0-9a-f]{32}(?::\d+)?) -->")
CODE_LIMIT = 2_000
BODY_KEPT = 600  # characters of a finding's code kept for re-verification
MAX_TRACKED = 300
STATE_LIMIT = 24_000  # characters of the state marker, within GitHub's 65,536 per comment


def finding_marker(fingerprint: str) -> str:
    return f"<!-- wholerepo:finding {fingerprint} -->"


def review_marker(head_sha: str, nonce: str) -> str:
    """Marks one run's review, so a retried POST can tell whether the failed attempt made it."""
    return f"<!-- wholerepo:review {head_sha} {nonce} -->"


def fixed_marker(fingerprint: str) -> str:
    return f"<!-- wholerepo:fixed {fingerprint} -->"


def finding_of(body: str) -> str | None:
    """The fingerprint in an inline comment's marker, if it has one."""
    match = _FINDING.search(body or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class Tracked:
    """A finding as remembered across runs."""

    fingerprint: str
    path: str
    start_line: int
    end_line: int
    severity: str
    category: str
    title: str
    code: str  # the cited code (quote, or the lines), to find it again in a later head
    body: str = ""  # the start of the explanation, shown while it stays open
    status: str = "open"  # open | fixed
    first_seen: str = ""  # the head commit it was first reported at
    fixed_in: str | None = None  # the commit that removed or changed its code
    posted: bool = False  # it got an inline comment (its thread is found by the marker)
    in_diff: bool | None = None
    dismissed: str | None = None  # "resolved by <login>" | "👎 by a reader": never posted again

    @classmethod
    def of(cls, f: Finding, code: str, head: str) -> Tracked:
        return cls(
            fingerprint=f.fingerprint,
            path=f.path,
            start_line=f.start_line,
            end_line=f.end_line,
            severity=f.severity,
            category=f.category,
            title=f.title[:300],
            code=code[:CODE_LIMIT],
            body=f.body[:BODY_KEPT],
            first_seen=head,
            in_diff=f.in_diff,
        )


@dataclass(frozen=True)
class State:
    """Everything remembered about one pull request."""

    head: str | None = None  # the head commit of the last review
    base: str | None = None
    runs: int = 0
    findings: tuple[Tracked, ...] = ()

    def by_fingerprint(self) -> dict[str, Tracked]:
        return {t.fingerprint: t for t in self.findings}


def encode(state: State, limit: int = STATE_LIMIT) -> str:
    """The state marker: compressed JSON in base64 (no ``--`` can end the HTML comment early),
    at most ``limit`` characters: fixed findings go first, then the code kept shrinks."""
    kept = sorted(
        state.findings,
        key=lambda t: (t.status != "open", -severity_rank(t.severity), t.path, t.start_line),
    )[:MAX_TRACKED]
    code_limit = CODE_LIMIT
    while True:
        data = {
            "head": state.head,
            "base": state.base,
            "runs": state.runs,
            "findings": [
                {**asdict(t), "code": t.code[:code_limit], "body": t.body[:code_limit]} for t in kept
            ],
        }
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        packed = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
        marker = f"<!-- wholerepo:state v{STATE_VERSION} {packed} -->"
        if len(marker) <= limit or not kept:
            return marker
        if kept[-1].status != "open":
            kept = kept[:-1]
        elif code_limit > 200:
            code_limit //= 2
        else:
            kept = kept[:-1]


_TRACKED_FIELDS = {f.name for f in fields(Tracked)}


def decode(body: str) -> State | None:
    """The state in a comment body; None when there is none or it cannot be read."""
    match = _STATE.search(body or "")
    if match is None or int(match.group(1)) != STATE_VERSION:
        return None
    try:
        data = json.loads(zlib.decompress(base64.b64decode(match.group(2), validate=True)))
        findings = tuple(
            Tracked(**{k: v for k, v in item.items() if k in _TRACKED_FIELDS})
            for item in data.get("findings") or []
            if isinstance(item, dict)
        )
        return State(
            head=data.get("head") if isinstance(data.get("head"), str) else None,
            base=data.get("base") if isinstance(data.get("base"), str) else None,
            runs=int(data.get("runs") or 0),
            findings=findings,
        )
    except (ValueError, TypeError, zlib.error, binascii.Error):
        return None


@dataclass(frozen=True)
class Thread:
    """A review thread on the pull request, as GraphQL lists it."""

    id: str
    resolved: bool
    resolved_by: str | None
    outdated: bool
    comment_id: int | None  # the first comment's REST id
    author: str | None
    body: str
    thumbs_down: int

    @property
    def fingerprint(self) -> str | None:
        return finding_of(self.body)


@dataclass
class Threads:
    """Our threads by fingerprint (only threads whose first comment is ours)."""

    ours: dict[str, Thread] = field(default_factory=dict)

    @classmethod
    def of(cls, threads: Iterable[Thread], identity: str | None) -> Threads:
        ours: dict[str, Thread] = {}
        for thread in threads:
            fp = thread.fingerprint
            if fp and same_login(thread.author, identity):
                ours.setdefault(fp, thread)
        return cls(ours)

    def dismissed(self, fingerprint: str, identity: str | None) -> str | None:
        """Why a person closed this finding's thread, if one did."""
        thread = self.ours.get(fingerprint)
        if thread is None:
            return None
        if thread.thumbs_down:
            return "👎 from a reader"
        if thread.resolved and thread.resolved_by and not same_login(thread.resolved_by, identity):
            return f"resolved by {thread.resolved_by}"
        return None


def same_login(a: str | None, b: str | None) -> bool:
    """Logins compared as GitHub spells bots both ways (``x[bot]`` in REST, ``x`` in GraphQL)."""
    if not a or not b:
        return False
    return a.lower().removesuffix("[bot]") == b.lower().removesuffix("[bot]")
