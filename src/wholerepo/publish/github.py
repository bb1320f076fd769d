"""A narrow GitHub client: the REST calls and GraphQL queries pr-review makes, paced and retried.

- Writes (POST, PATCH, DELETE, GraphQL mutations) are made one at a time and at least
  ``write_interval`` apart: GitHub's secondary rate limits punish bursts of content creation.
- A rate-limit answer (403 or 429) waits as GitHub says: ``retry-after`` seconds, or until
  ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0, else a minute; 5xx answers and
  dropped connections are retried with exponential backoff. After the retries, an
  ``GitHubUnavailable`` (exit 3) says what failed in one line.
- Any other 4xx is final: ``GitHubRefused`` carries the status and GitHub's message.
- The token is registered as a secret: it never reaches an output, an error or a log line.
- ``GITHUB_API_URL`` / ``GITHUB_GRAPHQL_URL`` choose the server (GitHub Enterprise Server).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from ..cli.output import register_secret, scrub
from ..errors import EndpointError, WholerepoError, unresolvable
from ..sanitize import one_line

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class GitHubUnavailable(EndpointError):
    """GitHub kept failing (5xx, rate limits, the network) after the retries: exit 3."""


class GitHubRefused(WholerepoError):
    """A final 4xx answer: the request is wrong or not allowed (no retry helps)."""

    exit_code: ClassVar[int] = 3

    def __init__(self, status: int, message: str, hint: str | None = None, errors: Any = None) -> None:
        super().__init__(message, hint)
        self.status = status
        self.errors = errors


@dataclass(frozen=True)
class Pacing:
    """How fast to write and how long to wait; the defaults follow GitHub's guidance."""

    write_interval: float = 1.0  # seconds between two writes
    backoff: float = 1.0  # the first retry's wait; doubles each time
    retries: int = 4  # retries after the first attempt
    max_wait: float = 120.0  # the longest single wait honoured (retry-after, reset)
    timeout: float = 30.0  # per request


def graphql_url_for(api_url: str) -> str:
    """GitHub's GraphQL endpoint beside ``api_url`` (``/api/v3`` -> ``/api/graphql`` on GHES)."""
    base = api_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("/v3")] + "/graphql"
    return base + "/graphql"


@dataclass
class GitHub:
    """REST and GraphQL calls with one token; counts what it sends (``calls``)."""

    token: str | None
    api_url: str = DEFAULT_API_URL
    graphql_url: str | None = None
    pacing: Pacing = field(default_factory=Pacing)
    on_event: Callable[[str], None] | None = None
    user_agent: str = "wholerepo"
    calls: Counter[str] = field(default_factory=Counter)
    _last_write: float = field(default=0.0, repr=False)
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.token)
        self.api_url = self.api_url.rstrip("/")
        if not self.graphql_url:
            self.graphql_url = graphql_url_for(self.api_url)
        # A token from the environment is never sent through a proxy's netrc or similar.
        self._session.trust_env = False

    def close(self) -> None:
        self._session.close()

    # -- REST ------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Mapping[str, Any], *, created: Callable[[], Any] | None = None) -> Any:
        """POST ``body``; ``created`` (when given) finds the object if a failed attempt made it
        after all, so a retry never makes a second one."""
        return self.request("POST", path, body=body, created=created).json()

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, body=body).json()

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, limit: int = 5000) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` (100 a page)."""
        return list(self.iterate(path, params, limit))

    def iterate(self, path: str, params: Mapping[str, Any] | None = None, limit: int = 5000) -> Iterator[Any]:
        query = {"per_page": 100, **(params or {})}
        url: str | None = self._url(path)
        count = 0
        while url is not None:
            response = self._send("GET", url, params=query)
            data = response.json()
            items = data if isinstance(data, list) else []
            for item in items:
                yield item
                count += 1
                if count >= limit:
                    return
            url = response.links.get("next", {}).get("url")
            query = {}  # the next link carries the query
            if url is not None and not self._same_server(url):
                return

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        created: Callable[[], Any] | None = None,
    ) -> requests.Response:
        return self._send(method, self._url(path), params=params, body=body, created=created)

    # -- GraphQL ---------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """The ``data`` of a GraphQL answer; errors are raised (rate limits retried)."""
        mutation = query.lstrip().startswith("mutation")
        assert self.graphql_url is not None
        attempt = 0
        while True:
            response = self._send(
                "POST",
                self.graphql_url,
                body={"query": query, "variables": dict(variables or {})},
                write=mutation,
                kind="graphql",
            )
            payload = response.json()
            errors = payload.get("errors") if isinstance(payload, dict) else None
            if not errors:
                return payload.get("data") if isinstance(payload, dict) else None
            limited = any(isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors)
            if limited and attempt < self.pacing.retries:
                attempt += 1
                self._wait(self._backoff(attempt), "GitHub GraphQL rate limit")
                continue
            first = errors[0] if isinstance(errors[0], dict) else {}
            message = one_line(scrub(str(first.get("message") or errors[0])), 300)
            if limited:
                raise GitHubUnavailable(f"GitHub GraphQL kept answering RATE_LIMITED: {message}")
            raise GitHubRefused(200, f"GitHub GraphQL error: {message}", errors=errors)

    # -- the one place requests are sent ----------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.api_url}/{path.lstrip('/')}"

    def _same_server(self, url: str) -> bool:
        return urlsplit(url).netloc == urlsplit(self.api_url).netloc

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": self.user_agent,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        created: Callable[[], Any] | None = None,
        write: bool | None = None,
        kind: str | None = None,
    ) -> requests.Response:
        write = method in WRITE_METHODS if write is None else write
        label = f"{method} {urlsplit(url).path}"
        attempt = 0
        while True:
            if write:
                self._pace()
            self.calls[kind or method] += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    data=json.dumps(body).encode() if body is not None else None,
                    headers={**self._headers(), **({"Content-Type": "application/json"} if body else {})},
                    timeout=self.pacing.timeout,
                    allow_redirects=method == "GET",
                )
            except requests.RequestException as exc:
                host = urlsplit(url).hostname or url
                if unresolvable(exc):
                    # No DNS answer: no network, or a wrong API URL. Waiting will not change that.
                    raise GitHubUnavailable(
                        f"{label}: cannot resolve {host}",
                        "no network, or a wrong GITHUB_API_URL / GITHUB_GRAPHQL_URL",
                    ) from None
                failure = f"{label}: {type(exc).__name__}"
                wait = self._backoff(attempt + 1)
            else:
                if write:
                    self._last_write = time.monotonic()
                status = response.status_code
                if status < 300:
                    return response
                limited_wait = self._rate_limit_wait(response)
                if limited_wait is None and status not in RETRY_STATUSES:
                    raise self._refused(response, label)
                self.calls["retried " + str(status)] += 1
                failure = f"{label}: {status} {self._message(response)}".rstrip()
                wait = limited_wait if limited_wait is not None else self._backoff(attempt + 1)
            if attempt >= self.pacing.retries:
                raise GitHubUnavailable(
                    f"GitHub failed after {attempt + 1} tries: {failure}",
                    "GitHub may be having an outage or rate-limiting this token; run the job again later",
                )
            attempt += 1
            self._wait(wait, f"{failure}; retry {attempt}/{self.pacing.retries}")
            if write and created is not None:
                found = created()
                if found is not None:
                    return _Found(found)

    def _pace(self) -> None:
        if self._last_write:
            gap = self.pacing.write_interval - (time.monotonic() - self._last_write)
            if gap > 0:
                time.sleep(gap)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.pacing.max_wait, self.pacing.backoff * (2 ** (attempt - 1))))

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """Seconds to wait when the answer is a rate limit, else None."""
        status = response.status_code
        if status not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return min(self.pacing.max_wait, max(0.0, float(retry_after)))
            except ValueError:
                pass
        if headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(headers.get("x-ratelimit-reset", ""))
            except ValueError:
                reset = time.time() + 60
            return min(self.pacing.max_wait, max(0.0, reset - time.time()) + 1.0)
        if status == 429 or "rate limit" in self._message(response).lower():
            # A secondary limit without headers: GitHub asks for at least a minute.
            return min(self.pacing.max_wait, 60.0)
        return None

    def _wait(self, seconds: float, why: str) -> None:
        if self.on_event is not None:
            self.on_event(f"{why}: waiting {seconds:.0f} s")
        time.sleep(seconds)

    @staticmethod
    def _message(response: requests.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            return one_line(scrub(response.text), 200)
        message = data.get("message") if isinstance(data, dict) else None
        errors = data.get("errors") if isinstance(data, dict) else None
        text = str(message or "")
        if isinstance(errors, list) and errors:
            details = [e.get("message") or e.get("code") if isinstance(e, dict) else e for e in errors]
            text += " (" + "; ".join(str(d) for d in details if d) + ")"
        return one_line(scrub(text), 400)

    def _refused(self, response: requests.Response, label: str) -> GitHubRefused:
        status = response.status_code
        message = self._message(response)
        hint = None
        if status in (401, 403, 404) and not self.token:
            hint = (
                "no token was sent: set GITHUB_TOKEN (in a workflow: env: GITHUB_TOKEN:"
                " ${{ secrets.GITHUB_TOKEN }})"
            )
        elif status in (401, 403, 404) and label.startswith("GET "):
            hint = "check that the token can read this repository (contents: read, pull-requests: read)"
        elif status in (401, 403, 404):
            hint = (
                "check the token and its permissions (pull-requests: write, issues: write, contents: read);"
                " a fork's pull_request event gets a read-only token"
            )
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            errors = None
        message = message or response.reason or "no reason given"
        return GitHubRefused(status, f"GitHub answered {status} to {label}: {message}", hint, errors)


class _Found(requests.Response):
    """A write that a failed attempt did make after all: answers with what was found."""

    def __init__(self, found: Any) -> None:
        super().__init__()
        self.status_code = 200
        self._content = json.dumps(found).encode()
