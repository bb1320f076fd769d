"""Finished shards, remembered: each shard's reply in the cache, keyed by its exact request and the
endpoint (its public URL and the model), so ``--resume`` sends only what is missing.

The reply is stored, not the findings: a resumed shard is verified again from it, against the
files as they are, exactly as when it arrived. Only replies that gave a complete result are
stored (a cut, unparseable or failed one is asked again). Like everything else the cache holds,
they are stored only when redaction is on: with ``--no-redact`` a reply may quote a secret.
Stored at once, one row per shard: an interrupted audit keeps every shard that finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict

from ..llm.base import ChatRequest, Reply, Usage
from ..llm.policy import public_url
from ..packer.cache import TokenCache, default_cache_dir
from ..settings import Settings

VERSION = "audit-reply/1"


def key(request: ChatRequest, base_url: str, model: str, thinking: str) -> str:
    """The checkpoint key of one request to one endpoint and model."""
    digest = hashlib.blake2b(digest_size=20)
    head = json.dumps([VERSION, public_url(base_url), model, thinking, request.max_tokens])
    for part in (head, request.system, request.user):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return "audit-reply:" + digest.hexdigest()


def _dump(reply: Reply) -> str:
    return json.dumps(
        {
            "content": reply.content,
            "finish_reason": reply.finish_reason,
            "usage": asdict(reply.usage) if reply.usage is not None else None,
            "json_mode": reply.json_mode,
            "attempts": reply.attempts,
        }
    )


def _load(text: str) -> Reply | None:
    try:
        data = json.loads(text)
        usage = Usage(**data["usage"]) if data.get("usage") is not None else None
        return Reply(
            str(data["content"]),
            "",
            data.get("finish_reason"),
            usage,
            bool(data["json_mode"]),
            int(data["attempts"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


class Checkpoints:
    """The store; ``enabled`` False (--no-cache, --no-redact) remembers nothing."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.cache and settings.redact
        self._cache = TokenCache(default_cache_dir() if self.enabled else None)
        self.enabled = self.enabled and self._cache.enabled

    def get(self, keys: Iterable[str]) -> dict[str, Reply]:
        if not self.enabled:
            return {}
        found = {}
        for k, text in self._cache.get_blobs(list(keys)).items():
            reply = _load(text)
            if reply is not None:
                found[k] = reply
        return found

    def put(self, k: str, reply: Reply) -> None:
        if self.enabled:
            self._cache.put_blobs({k: _dump(reply)})

    def close(self) -> None:
        self._cache.close()
