"""A GitHub stand-in on 127.0.0.1: the REST calls and GraphQL queries a pull-request reviewer makes.

It behaves as GitHub does where it matters to a reviewer:
- every REST request body is validated against GitHub's own OpenAPI description, and every
  GraphQL query against GitHub's schema (graphql-core), both copied in tests/data/github/;
  a request that fails validation, or a route GitHub does not have, is recorded in ``violations``;
- state is kept: issue comments, reviews, review comments and their threads, replies, reactions,
  resolved threads, collaborators and their permission; lists are paginated (30 a page by
  default, ``per_page`` up to 100, ``Link`` headers);
- a review comment off the diff is answered with 422 and the whole review is refused, as GitHub
  does ("line must be part of the diff", "start line must precede the end line", "...same hunk");
- the pull request's files and patches come from a real git repository (the "origin"), so hunks
  are exactly git's;
- failures can be scripted per route (``fail(...)``): 403 secondary rate limits with
  ``retry-after``, 5xx bursts.

The REST API lives under ``/api/v3`` and GraphQL at ``/api/graphql``, as on GitHub Enterprise
Server, so a client that ignores GITHUB_API_URL finds nothing here.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
from graphql import GraphQLSchema, build_schema, graphql_sync, parse, validate
from unidiff import PatchSet

DATA = Path(__file__).resolve().parent.parent / "data" / "github"
REST_PREFIX = "/api/v3"
GRAPHQL_PATH = "/api/graphql"


# -- GitHub's descriptions ------------------------------------------------------------------------


def _openapi_nullable(schema: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema, and objects closed to unknown keys."""
    if isinstance(schema, list):
        return [_openapi_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi_nullable(v) for k, v in schema.items() if k not in ("example", "examples")}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False  # stricter than GitHub: a misspelt key is a bug
    return out


@functools.lru_cache(maxsize=1)
def rest_routes() -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    """(method, path pattern, operation) for every operation of the REST subset."""
    spec = json.loads((DATA / "rest-subset.openapi.json").read_text())
    routes = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method, operation in item.items():
            if method in ("get", "post", "patch", "put", "delete"):
                routes.append((method.upper(), pattern, operation))
    return routes


@functools.lru_cache(maxsize=1)
def graphql_schema() -> GraphQLSchema:
    schema = build_schema((DATA / "github-schema.graphql").read_text(), assume_valid_sdl=True)
    # GitHub's published schema deprecates some fields that implement non-deprecated interface
    # fields, which graphql-core's schema check refuses; queries are still validated in full.
    schema._validation_errors = []
    return schema


# -- the repository behind the pull request -------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def pull_files(repo: Path, base: str, head: str) -> list[dict[str, Any]]:
    """``GET /pulls/{n}/files`` as GitHub computes it: merge base to head, renames detected."""
    return copy.deepcopy(_pull_files(repo, base, head))


@functools.lru_cache(maxsize=16)
def _pull_files(repo: Path, base: str, head: str) -> list[dict[str, Any]]:
    merge_base = _git(repo, "merge-base", base, head).strip()
    text = _git(repo, "-c", "core.quotepath=off", "diff", "--no-color", "-M", "-U3", merge_base, head)
    files = []
    for patched in PatchSet(text):
        source = patched.source_file[2:] if patched.source_file.startswith("a/") else None
        target = patched.target_file[2:] if patched.target_file.startswith("b/") else None
        status = (
            "added"
            if patched.is_added_file
            else "removed"
            if patched.is_removed_file
            else "renamed"
            if patched.is_rename
            else "modified"
        )
        entry: dict[str, Any] = {
            "sha": "0" * 40,
            "filename": target or source,
            "status": status,
            "additions": patched.added,
            "deletions": patched.removed,
            "changes": patched.added + patched.removed,
        }
        if patched.is_rename:
            entry["previous_filename"] = source
        body = str(patched)
        at = body.find("\n@@")
        if not patched.is_binary_file and at >= 0:
            entry["patch"] = body[at + 1 :].rstrip("\n")
        files.append(entry)
    return files


def hunks_of(patch: str | None) -> list[tuple[int, int]]:
    ranges = []
    for m in re.finditer(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", patch or "", re.MULTILINE):
        start, length = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
        if length:
            ranges.append((start, start + length - 1))
    return ranges


# -- state ------------------------------------------------------------------------------------------


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    after: bool = False  # do the work, then fail (a gateway timing out on a request that landed)


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0


@dataclass
class PR:
    number: int
    base_sha: str
    head_sha: str
    base_ref: str = "main"
    head_ref: str = "feature"
    head_repo: str | None = None  # None: the same repository
    title: str = "A change"
    author: str = "alice"
    state: str = "open"


@dataclass
class FakeGitHub:
    """The server. ``tokens`` maps a token to the login it acts as."""

    repo_dir: Path  # the origin repository (bare or not) the pull requests live in
    repository: str = "octo/hello"
    tokens: dict[str, str] = field(
        default_factory=lambda: {"ghs_test_token_0123456789abcdef": "github-actions[bot]"}
    )
    permissions: dict[str, str] = field(default_factory=dict)  # login -> admin|write|read
    installation_tokens: bool = True  # GET /user answers 403, as for GITHUB_TOKEN

    def __post_init__(self) -> None:
        self.pulls: dict[int, PR] = {}
        self.issue_comments: list[dict[str, Any]] = []
        self.reviews: list[dict[str, Any]] = []
        self.review_comments: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []  # {"id", "comments": [ids], "resolved", "resolved_by"}
        self.requests: list[Received] = []
        self.violations: list[str] = []
        self.failures: list[Failure] = []
        self._next_id = 1000
        self._lock = threading.RLock()
        self._inflight_writes = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- set-up and inspection ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + REST_PREFIX

    @property
    def graphql_url(self) -> str:
        return self.url + GRAPHQL_PATH

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and the ``path`` regex with ``status``."""
        self.failures.append(
            Failure(method, re.compile(path), status, times, dict(headers or {}), body, after)
        )

    def user(self, login: str, kind: str = "User") -> dict[str, Any]:
        return {
            "login": login,
            "id": abs(hash(login)) % 10**6,
            "type": kind,
            "node_id": f"U_{login}",
            "html_url": f"https://github.com/{login}",
        }

    def add_comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        """An issue comment written by someone (a person, or a forged marker)."""
        comment = self._issue_comment(number, body, login)
        self.issue_comments.append(comment)
        return comment

    def resolve_thread_as(self, thread_id: str, login: str) -> None:
        for thread in self.threads:
            if thread["id"] == thread_id:
                thread["resolved"], thread["resolved_by"] = True, login

    def react(self, comment_id: int, content: str = "-1") -> None:
        for c in self.review_comments:
            if c["id"] == comment_id:
                c["reactions"][content] = c["reactions"].get(content, 0) + 1
                c["reactions"]["total_count"] += 1

    def summary_comments(self, number: int) -> list[dict[str, Any]]:
        return [
            c for c in self.issue_comments if c["issue_number"] == number and "wholerepo:summary" in c["body"]
        ]

    def thread_of(self, comment_id: int) -> dict[str, Any]:
        return next(t for t in self.threads if comment_id in t["comments"])

    def writes(self) -> list[Received]:
        return [
            r
            for r in self.requests
            if r.method != "GET" and not (r.path == GRAPHQL_PATH and not _is_mutation(r.body))
        ]

    # -- the HTTP side ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                received = Received(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                write = self.command != "GET" and not (parts.path == GRAPHQL_PATH and not _is_mutation(body))
                with fake._lock:
                    fake.requests.append(received)
                    if write:
                        fake._inflight_writes += 1
                        if fake._inflight_writes > 1:
                            fake.violations.append(f"concurrent writes at {self.command} {parts.path}")
                try:
                    status, payload, headers = fake.answer(received)
                finally:
                    if write:
                        with fake._lock:
                            fake._inflight_writes -= 1
                received.status = status
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler

    def answer(self, r: Received) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            for failure in self.failures:
                if failure.times > 0 and failure.method == r.method and failure.path.search(r.path):
                    failure.times -= 1
                    if failure.after:  # the request lands, the answer is lost
                        self._answer(r)
                    return (
                        failure.status,
                        failure.body or {"message": f"HTTP {failure.status}"},
                        failure.headers,
                    )
        return self._answer(r)

    def _answer(self, r: Received) -> tuple[int, Any, dict[str, str]]:
        auth = r.headers.get("authorization", "")
        login = self.tokens.get(auth.removeprefix("Bearer ").removeprefix("token ").strip())
        if auth and login is None:
            return 401, {"message": "Bad credentials"}, {}
        if r.path == GRAPHQL_PATH and r.method == "POST":
            if login is None:
                return 401, {"message": "This endpoint requires you to be authenticated."}, {}
            return 200, self._graphql(r.body, login), {}
        if not r.path.startswith(REST_PREFIX + "/"):
            self.violations.append(f"not GitHub's API: {r.method} {r.path}")
            return 404, {"message": "Not Found"}, {}
        path = r.path[len(REST_PREFIX) :]
        route = next(((m, op) for m, p, op in rest_routes() if m == r.method and p.match(path)), None)
        if route is None:
            self.violations.append(f"no such operation in GitHub's REST API: {r.method} {path}")
            return 404, {"message": "Not Found"}, {}
        operation = route[1]
        schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if r.method in ("POST", "PATCH", "PUT"):
            if schema is None:
                self.violations.append(f"{r.method} {path} takes no JSON body")
            else:
                try:
                    jsonschema.Draft7Validator(_openapi_nullable(schema)).validate(r.body)
                except jsonschema.ValidationError as exc:
                    self.violations.append(f"{r.method} {path}: body invalid: {exc.message}")
                    return 422, {"message": "Invalid request.", "errors": [exc.message]}, {}
        per_page = r.query.get("per_page", ["30"])[0]
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            self.violations.append(f"per_page={per_page} on {path}")
        try:
            return self._rest(r.method, path, r, login)
        except KeyError as exc:
            return 404, {"message": f"Not Found ({exc})"}, {}

    # -- REST operations -------------------------------------------------------------------------

    def _page(self, r: Received, items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        per_page = int(r.query.get("per_page", ["30"])[0])
        page = int(r.query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            here = self.api_url + r.path[len(REST_PREFIX) :]
            headers["Link"] = f'<{here}?per_page={per_page}&page={page + 1}>; rel="next"'
        return 200, chunk, headers

    def _rest(
        self, method: str, path: str, r: Received, login: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        owner_repo = "/repos/" + self.repository
        body = r.body if isinstance(r.body, dict) else {}
        if path == "/user":
            if login is None:
                return 401, {"message": "Requires authentication"}, {}
            if self.installation_tokens:
                return 403, {"message": "Resource not accessible by integration"}, {}
            return 200, self.user(login), {}
        if not path.startswith(owner_repo + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(owner_repo) :]
        if (m := re.fullmatch(r"/pulls/(\d+)", rest)) and method == "GET":
            return 200, self._pull(self.pulls[int(m.group(1))]), {}
        if (m := re.fullmatch(r"/pulls/(\d+)/files", rest)) and method == "GET":
            pr = self.pulls[int(m.group(1))]
            # GitHub lists at most 3,000 files of a pull request, whatever the pages ask for.
            return self._page(r, pull_files(self.repo_dir, pr.base_sha, pr.head_sha)[:3000])
        if (m := re.fullmatch(r"/compare/([0-9a-f]+)\.\.\.([0-9a-f]+)", rest)) and method == "GET":
            base = _git(self.repo_dir, "merge-base", m.group(1), m.group(2)).strip()
            return (
                200,
                {"status": "ahead", "merge_base_commit": {"sha": base}, "commits": [], "files": []},
                {},
            )
        if (m := re.fullmatch(r"/contents/(.+)", rest)) and method == "GET":
            ref = r.query.get("ref", ["HEAD"])[0]
            try:
                text = _git(self.repo_dir, "show", f"{ref}:{m.group(1)}")
            except RuntimeError:
                return 404, {"message": "Not Found"}, {}
            import base64

            return (
                200,
                {
                    "type": "file",
                    "path": m.group(1),
                    "encoding": "base64",
                    "content": base64.b64encode(text.encode()).decode(),
                },
                {},
            )
        if (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)) and method == "GET":
            who = m.group(1)
            permission = self.permissions.get(who, "read")
            return 200, {"permission": permission, "role_name": permission, "user": self.user(who)}, {}
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m.group(1))
            if method == "GET":
                return self._page(r, [c for c in self.issue_comments if c["issue_number"] == number])
            if login is None:
                return 401, {"message": "Requires authentication"}, {}
            comment = self._issue_comment(number, body["body"], login)
            self.issue_comments.append(comment)
            return 201, comment, {}
        if m := re.fullmatch(r"/issues/comments/(\d+)", rest):
            comment = next(c for c in self.issue_comments if c["id"] == int(m.group(1)))
            if method == "GET":
                return 200, comment, {}
            if method == "PATCH":
                if comment["user"]["login"] != login:
                    return 403, {"message": "Resource not accessible by integration"}, {}
                comment["body"] = body["body"]
                comment["updated_at"] = _now()
                return 200, comment, {}
            if method == "DELETE":
                self.issue_comments.remove(comment)
                return 204, None, {}
        if m := re.fullmatch(r"/pulls/(\d+)/reviews", rest):
            number = int(m.group(1))
            if method == "GET":
                return self._page(r, [v for v in self.reviews if v["pull_number"] == number])
            return self._create_review(self.pulls[number], body, login)
        if (m := re.fullmatch(r"/pulls/(\d+)/comments/(\d+)/replies", rest)) and method == "POST":
            parent = next(c for c in self.review_comments if c["id"] == int(m.group(2)))
            reply = self._review_comment(
                parent["pull_number"],
                parent["pull_request_review_id"],
                {"path": parent["path"], "line": parent["line"], "side": "RIGHT", "body": body["body"]},
                parent["commit_id"],
                login or "",
            )
            reply["in_reply_to_id"] = parent["id"]
            self.review_comments.append(reply)
            self.thread_of(parent["id"])["comments"].append(reply["id"])
            return 201, reply, {}
        if m := re.fullmatch(r"/pulls/(\d+)/comments", rest):
            number = int(m.group(1))
            if method == "GET":
                return self._page(r, [c for c in self.review_comments if c["pull_number"] == number])
            return 422, {"message": "single review comments are not used by this stand-in"}, {}
        return 404, {"message": f"Not Found: {method} {rest}"}, {}

    def _pull(self, pr: PR) -> dict[str, Any]:
        base_repo = {
            "full_name": self.repository,
            "name": self.repository.split("/")[1],
            "owner": self.user(self.repository.split("/")[0]),
        }
        head_repo = {"full_name": pr.head_repo or self.repository}
        return {
            "number": pr.number,
            "state": pr.state,
            "title": pr.title,
            "user": self.user(pr.author),
            "html_url": f"https://github.com/{self.repository}/pull/{pr.number}",
            "head": {"sha": pr.head_sha, "ref": pr.head_ref, "repo": head_repo, "label": f"x:{pr.head_ref}"},
            "base": {"sha": pr.base_sha, "ref": pr.base_ref, "repo": base_repo, "label": f"x:{pr.base_ref}"},
            "draft": False,
        }

    def _issue_comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        cid = self.new_id()
        kind = "Bot" if login.endswith("[bot]") else "User"
        return {
            "id": cid,
            "node_id": f"IC_{cid}",
            "issue_number": number,
            "body": body,
            "user": self.user(login, kind),
            "created_at": _now(),
            "updated_at": _now(),
            "html_url": f"https://github.com/{self.repository}/pull/{number}#issuecomment-{cid}",
        }

    def _review_comment(
        self, number: int, review_id: int, c: Mapping[str, Any], commit: str, login: str
    ) -> dict[str, Any]:
        cid = self.new_id()
        return {
            "id": cid,
            "node_id": f"PRRC_{cid}",
            "pull_request_review_id": review_id,
            "pull_number": number,
            "path": c["path"],
            "line": c.get("line"),
            "start_line": c.get("start_line"),
            "side": c.get("side", "RIGHT"),
            "body": c["body"],
            "commit_id": commit,
            "user": self.user(login, "Bot" if login.endswith("[bot]") else "User"),
            "reactions": {"total_count": 0, "+1": 0, "-1": 0},
            "in_reply_to_id": None,
        }

    def _create_review(
        self, pr: PR, body: Mapping[str, Any], login: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        event = body.get("event")
        if event in ("COMMENT", "REQUEST_CHANGES") and not body.get("body"):
            return 422, {"message": "Unprocessable Entity", "errors": ["Body is required"]}, {}
        if event == "APPROVE" and login == "github-actions[bot]":
            return (
                422,
                {
                    "message": "Unprocessable Entity",
                    "errors": ["GitHub Actions is not permitted to approve pull requests."],
                },
                {},
            )
        files = {f["filename"]: f for f in pull_files(self.repo_dir, pr.base_sha, pr.head_sha)}
        for c in body.get("comments") or []:
            error = _comment_error(c, files)
            if error:
                return (
                    422,
                    {
                        "message": "Unprocessable Entity",
                        "errors": [error],
                        "documentation_url": "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request",
                    },
                    {},
                )
        if len(body.get("body") or "") > 65536:
            return 422, {"message": "Body is too long (maximum is 65536 characters)"}, {}
        rid = self.new_id()
        commit = body.get("commit_id") or pr.head_sha
        review = {
            "id": rid,
            "node_id": f"PRR_{rid}",
            "pull_number": pr.number,
            "body": body.get("body") or "",
            "state": "COMMENTED" if event == "COMMENT" else event or "PENDING",
            "commit_id": commit,
            "user": self.user(login or "", "Bot" if (login or "").endswith("[bot]") else "User"),
        }
        self.reviews.append(review)
        for c in body.get("comments") or []:
            comment = self._review_comment(pr.number, rid, c, commit, login or "")
            self.review_comments.append(comment)
            self.threads.append(
                {
                    "id": f"PRRT_{comment['id']}",
                    "comments": [comment["id"]],
                    "resolved": False,
                    "resolved_by": None,
                    "path": c["path"],
                    "line": c.get("line"),
                }
            )
        return 200, review, {}

    # -- GraphQL ---------------------------------------------------------------------------------

    def _graphql(self, body: Any, login: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            self.violations.append("GraphQL request without a query")
            return {"errors": [{"message": "A query attribute must be specified"}]}
        schema = graphql_schema()
        try:
            document = parse(body["query"])
        except Exception as exc:  # GraphQLError
            self.violations.append(f"GraphQL syntax: {exc}")
            return {"errors": [{"message": str(exc)}]}
        errors = validate(schema, document)
        if errors:
            self.violations.append("GraphQL invalid: " + "; ".join(e.message for e in errors))
            return {"errors": [{"message": e.message} for e in errors]}
        result = graphql_sync(
            schema, body["query"], root_value=self._root(login), variable_values=body.get("variables") or {}
        )
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            self.violations.append("GraphQL execution: " + "; ".join(e.message for e in result.errors))
            out["errors"] = [{"message": e.message} for e in result.errors]
        return out

    def _actor(self, login: str | None) -> dict[str, Any] | None:
        if not login:
            return None
        if login.endswith("[bot]"):  # GraphQL spells a bot without the suffix
            return {"__typename": "Bot", "login": login.removesuffix("[bot]")}
        return {"__typename": "User", "login": login}

    def _thread_node(self, thread: dict[str, Any]) -> dict[str, Any]:
        comments = [c for c in self.review_comments if c["id"] in thread["comments"]]

        def reactions_of(c: dict[str, Any]) -> Callable[..., dict[str, Any]]:
            def count(info: Any, content: str | None = None, **_: Any) -> dict[str, Any]:
                key = {"THUMBS_DOWN": "-1", "THUMBS_UP": "+1"}.get(content or "", "")
                total = c["reactions"].get(key, 0) if content else c["reactions"]["total_count"]
                return {"totalCount": total}

            return count

        def comment_nodes(info: Any, first: int | None = None, **_: Any) -> dict[str, Any]:
            chosen = comments[: first or 100]
            nodes = [
                {
                    "fullDatabaseId": str(c["id"]),
                    "id": c["node_id"],
                    "body": c["body"],
                    "author": self._actor(c["user"]["login"]),
                    "reactions": reactions_of(c),
                }
                for c in chosen
            ]
            return {"totalCount": len(comments), "nodes": nodes}

        return {
            "id": thread["id"],
            "isResolved": thread["resolved"],
            "isOutdated": False,
            "resolvedBy": {"login": thread["resolved_by"]} if thread["resolved_by"] else None,
            "path": thread["path"],
            "line": thread["line"],
            "comments": comment_nodes,
        }

    def _root(self, login: str) -> dict[str, Any]:
        def threads_of(items: list[dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            def page(
                info: Any, first: int | None = None, after: str | None = None, **_: Any
            ) -> dict[str, Any]:
                start = int(after) if after else 0
                count = min(first or 100, 100)
                chunk = items[start : start + count]
                more = start + count < len(items)
                return {
                    "nodes": [self._thread_node(t) for t in chunk],
                    "totalCount": len(items),
                    "pageInfo": {"hasNextPage": more, "endCursor": str(start + count) if more else None},
                }

            return page

        def pull_request(info: Any, number: int) -> dict[str, Any] | None:
            if number not in self.pulls:
                return None
            review_ids = {v["id"] for v in self.reviews if v["pull_number"] == number}
            ids = {c["id"] for c in self.review_comments if c["pull_request_review_id"] in review_ids}
            return {
                "number": number,
                "reviewThreads": threads_of([t for t in self.threads if t["comments"][0] in ids]),
            }

        def repository(info: Any, owner: str, name: str, **_: Any) -> dict[str, Any] | None:
            if f"{owner}/{name}" != self.repository:
                return None
            return {"pullRequest": pull_request}

        def resolve(info: Any, input: Mapping[str, Any]) -> dict[str, Any]:
            thread = next(t for t in self.threads if t["id"] == input["threadId"])
            thread["resolved"], thread["resolved_by"] = True, login
            return {"thread": self._thread_node(thread), "clientMutationId": input.get("clientMutationId")}

        return {
            "viewer": {"__typename": "User", "login": login},
            "repository": repository,
            "resolveReviewThread": resolve,
        }


def _comment_error(c: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What GitHub says about a review comment it refuses, or None."""
    f = files.get(c.get("path", ""))
    if f is None:
        return "Pull request review thread path is invalid"
    hunks = hunks_of(f.get("patch"))
    if not hunks:
        return "Pull request review thread diff hunk can't be blank"
    line = c.get("line")
    if line is None:
        return "Pull request review thread line must be part of the diff"
    if c.get("side", "RIGHT") != "RIGHT":
        return "this stand-in only checks RIGHT-side comments"
    hunk = next((h for h in hunks if h[0] <= line <= h[1]), None)
    if hunk is None:
        return "Pull request review thread line must be part of the diff"
    start = c.get("start_line")
    if start is not None:
        if start >= line:
            return "pull_request_review_thread.start_line must precede the end line"
        if not hunk[0] <= start <= hunk[1]:
            return "Pull request review thread start line must be part of the same hunk as the line"
    return None


def _is_mutation(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("query", "")).lstrip().startswith("mutation")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def event_payload(fake: FakeGitHub, number: int, action: str = "opened", **extra: Any) -> dict[str, Any]:
    """A pull_request event as GitHub delivers it to a workflow (the fields a reviewer reads)."""
    pr = fake._pull(fake.pulls[number])
    return {
        "action": action,
        "number": number,
        "pull_request": copy.deepcopy(pr),
        "repository": {
            "full_name": fake.repository,
            "name": fake.repository.split("/")[1],
            "owner": fake.user(fake.repository.split("/")[0]),
        },
        "sender": fake.user(fake.pulls[number].author),
        **extra,
    }


Callback = Callable[[], None]
