"""Sending an audit's shards: concurrently, over one or many endpoints, nothing lost.

Each endpoint gets ``concurrency`` workers (so at most that many of its requests are in flight);
every worker takes the next shard from one shared queue, in shard order, so a fast endpoint takes
more shards than a slow one and a fleet of servers works as one. The workers run under one
``asyncio.TaskGroup`` (Python 3.11+; ``asyncio.gather`` on 3.10). A shard is sent and verified by
the reviewer's own ``run()``; an endpoint error fails that shard only. A finished shard is
reported at once (``on_done``) and its reply checkpointed; with ``resume`` a shard whose request
was answered before, by any of the endpoints, is taken from its checkpoint and not sent.

A Ctrl-C (or SIGTERM) cancels the workers: the shards in flight keep what had arrived, marked
interrupted, and everything finished stays in ``results``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..errors import EndpointError
from ..llm.base import ChatModel, ChatRequest, ModelInfo, Reply, Transcript
from ..llm.policy import public_url
from ..reviewer.run import outcome_of
from ..reviewer.run import run as review_run
from . import checkpoint
from .merge import DONE, FAILED, INTERRUPTED, ShardResult
from .plan import AuditPlan, Shard


@dataclass
class Target:
    """One endpoint: its client, its URL and model, and how many requests it may have in flight."""

    chat: ChatModel
    base_url: str
    model: str
    concurrency: int = 4

    @property
    def url(self) -> str:
        return public_url(self.base_url)


@dataclass
class Progress:
    """What the run reports as it goes (the CLI prints it)."""

    on_start: Callable[[Shard, Target], None] = lambda s, t: None
    on_done: Callable[[ShardResult, float], None] = lambda r, seconds: None


class _Recording:
    """A ChatModel that remembers the last whole reply it passed on (for the checkpoint)."""

    def __init__(self, chat: ChatModel) -> None:
        self.chat = chat
        self.reply: Reply | None = None

    @property
    def model(self) -> str:
        return self.chat.model

    async def complete(self, request: ChatRequest, transcript: Transcript | None = None) -> Reply:
        self.reply = await self.chat.complete(request, transcript)
        return self.reply

    async def list_models(self, timeout: float | None = None) -> list[ModelInfo]:
        return await self.chat.list_models(timeout)

    async def aclose(self) -> None:
        return None


@dataclass
class Audit:
    """One audit's sending: the results so far survive an interruption (read ``results``)."""

    plan: AuditPlan
    targets: list[Target]
    tool_version: str
    store: checkpoint.Checkpoints
    resume: bool = False
    progress: Progress = field(default_factory=Progress)
    results: dict[int, ShardResult] = field(default_factory=dict)
    sent: list[int] = field(default_factory=list)  # shards sent to an endpoint, in order
    _stop: bool = False

    def shard_paths(self, s: Shard) -> tuple[str, ...]:
        return tuple(self.plan.prefix + p for p in s.paths)

    def resumed(self) -> list[int]:
        """Take every selected shard whose reply is checkpointed (``--resume``); returns them."""
        if not self.resume:
            return []
        taken = []
        for index in self.plan.selected:
            s = self.plan.shard(index)
            request = self.plan.request(s)
            keys = {
                checkpoint.key(request.request(), t.base_url, t.model, self.plan.settings.thinking): t
                for t in self.targets
            }
            found = self.store.get(keys)
            for k, reply in found.items():
                t = keys[k]
                outcome = outcome_of(replace(request, model=t.model), reply, self.tool_version)
                if outcome.error is None and outcome.result is not None:
                    self.results[index] = ShardResult(
                        index, s.name, DONE, self.shard_paths(s), outcome.result, endpoint=t.url, resumed=True
                    )
                    taken.append(index)
                    break
        return taken

    async def run(self) -> dict[int, ShardResult]:
        queue = deque(i for i in self.plan.selected if i not in self.results)
        workers = [t for t in self.targets for _ in range(max(1, t.concurrency))]
        if sys.version_info >= (3, 11):
            async with asyncio.TaskGroup() as group:
                for t in workers:
                    group.create_task(self._worker(t, queue))
        else:  # pragma: no cover - Python 3.10: the workers bound the requests in flight
            await asyncio.gather(*(self._worker(t, queue) for t in workers))
        return self.results

    async def _worker(self, t: Target, queue: deque[int]) -> None:
        while queue and not self._stop:
            index = queue.popleft()
            s = self.plan.shard(index)
            self.results[index] = await self._one(s, t)

    async def _one(self, s: Shard, t: Target) -> ShardResult:
        started = time.monotonic()
        paths = self.shard_paths(s)
        try:
            p = self.plan.request(s, t.model)
        except EndpointError as exc:  # pragma: no cover - the plan checked every request
            return self._done(
                ShardResult(s.index, s.name, FAILED, paths, None, exc.one_line(), t.url), started
            )
        recording = _Recording(t.chat)
        self.progress.on_start(s, t)
        self.sent.append(s.index)
        try:
            outcome = await review_run(p, recording, tool_version=self.tool_version)
        except EndpointError as exc:
            return self._done(
                ShardResult(s.index, s.name, FAILED, paths, None, exc.one_line(), t.url), started
            )
        if outcome.interrupted:
            self._stop = True
            result = ShardResult(s.index, s.name, INTERRUPTED, paths, outcome.result, "interrupted", t.url)
            return self._done(result, started)
        if outcome.error is not None or outcome.result is None:
            error = outcome.error.one_line() if outcome.error is not None else "no result"
            return self._done(
                ShardResult(s.index, s.name, FAILED, paths, outcome.result, error, t.url), started
            )
        if recording.reply is not None:
            k = checkpoint.key(p.request(), t.base_url, t.model, self.plan.settings.thinking)
            self.store.put(k, recording.reply)
        return self._done(ShardResult(s.index, s.name, DONE, paths, outcome.result, None, t.url), started)

    def _done(self, result: ShardResult, started: float) -> ShardResult:
        self.results[result.index] = result
        self.progress.on_done(result, time.monotonic() - started)
        return result
