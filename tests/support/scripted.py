"""A ChatModel that answers from a script, in-process: for testing what happens around the
endpoint (planning, verification, outcomes) without HTTP. The loopback server in fake_openai.py
stays for the client's and the CLI's own tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from wholerepo.llm.base import ChatRequest, ModelInfo, Reply, Transcript, Usage


@dataclass
class Cut:
    """Part of a reply arrives, then the call fails with ``error`` (an EndpointError, say)."""

    partial: str
    error: BaseException


@dataclass
class ScriptedModel:
    """Answers each ``complete`` with the next scripted Reply (or text, or Cut, or exception)."""

    script: deque[Reply | str | Cut | BaseException] = field(default_factory=deque)
    models: list[ModelInfo] = field(default_factory=lambda: [ModelInfo("scripted")])
    model: str = "scripted"
    requests: list[ChatRequest] = field(default_factory=list)
    closed: int = 0

    def then(self, *steps: Reply | str | Cut | BaseException) -> ScriptedModel:
        self.script.extend(steps)
        return self

    async def complete(self, request: ChatRequest, transcript: Transcript | None = None) -> Reply:
        self.requests.append(request)
        step = self.script.popleft()
        if isinstance(step, Cut):
            if transcript is not None:
                transcript.parts.append(step.partial)
            raise step.error
        if isinstance(step, BaseException):
            raise step
        reply = step if isinstance(step, Reply) else Reply(step, "", "stop", Usage(100, 10), True, 1)
        if transcript is not None:
            transcript.parts.append(reply.content)
        return reply

    async def list_models(self, timeout: float | None = None) -> list[ModelInfo]:
        return list(self.models)

    async def aclose(self) -> None:
        self.closed += 1
