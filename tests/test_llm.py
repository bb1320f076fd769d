"""The OpenAI-compatible ChatModel against a real HTTP server on 127.0.0.1 (tests/fake_openai.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openai import CONTEXT_400, Chat, EmptyStream, FakeOpenAI, Raw, ResetAfter, Stall, Status, usage
from wholerepo.errors import EndpointError, UsageError
from wholerepo.llm import (
    ChatRequest,
    ContextLengthError,
    Endpoint,
    EndpointFailed,
    NotJSONError,
    Reply,
    Transcript,
    find_api_key,
    public_url,
    require_api_key,
)
from wholerepo.llm.openai_compat import OpenAICompatible
from wholerepo.llm.policy import key_variables, scrub_key

KEY = "sk-test-7f3a9c1e5b2d4a6f8e0c"
GOOD = '{"summary": "fine", "findings": []}'


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


class Client:
    """The model under test, with its waits and events recorded."""

    def __init__(self, fake: FakeOpenAI, **overrides: Any) -> None:
        self.slept: list[float] = []
        self.events: list[str] = []
        options: dict[str, Any] = {
            "base_url": fake.url,
            "model": "deepseek-flash",
            "api_key": KEY,
            "timeout": 20.0,
            "max_retries": 2,
            "retry_backoff": 0.01,
            "retry_after_cap": 0.05,
        }
        options.update(overrides)

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.model = OpenAICompatible(Endpoint(**options), on_event=self.events.append, sleep=sleep)

    def complete(self, system: str = "s", user: str = "u", max_tokens: int = 5, **kw: Any) -> Reply:
        async def go() -> Reply:
            try:
                return await self.model.complete(ChatRequest(system, user, max_tokens), **kw)
            finally:
                await self.model.aclose()

        return asyncio.run(go())

    def list_models(self) -> Any:
        async def go() -> Any:
            try:
                return await self.model.list_models()
            finally:
                await self.model.aclose()

        return asyncio.run(go())


def test_request_shape_streaming_with_keepalives(fake: FakeOpenAI) -> None:
    fake.script(
        Chat(GOOD, usage=usage(1000, 50, hit=900, reasoning=7), reasoning="thinking...", keepalives=3)
    )
    reply = Client(fake).complete("SYS", "USER", max_tokens=321)
    assert reply.content == GOOD
    assert reply.reasoning == "thinking..."
    assert reply.finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cache_hit_tokens, reply.usage.cache_miss_tokens) == (
        1000,
        900,
        100,
    )
    assert reply.usage.reasoning_tokens == 7
    [request] = fake.chats
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json
    assert body["max_tokens"] == 321
    assert body["stream"] is True
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"] == [{"role": "system", "content": "SYS"}, {"role": "user", "content": "USER"}]
    assert "thinking" not in body  # not DeepSeek, not asked for


def test_non_streaming_reply_after_blank_lines(fake: FakeOpenAI) -> None:
    fake.script(Chat(GOOD, usage=usage(10, 2), keepalives=5, reasoning="hmm"))
    reply = Client(fake, stream=False).complete()
    assert reply.content == GOOD
    assert reply.reasoning == "hmm"
    assert reply.usage is not None and reply.usage.prompt_tokens == 10
    assert fake.chats[0].json.get("stream") in (None, False)


@pytest.mark.parametrize(("thinking", "expected"), [("on", "enabled"), ("off", "disabled")])
def test_thinking_sent_when_asked(fake: FakeOpenAI, thinking: str, expected: str) -> None:
    fake.script(Chat(GOOD))
    Client(fake, thinking=thinking).complete()
    assert fake.chats[0].json["thinking"] == {"type": expected}


def test_thinking_auto_only_for_deepseek() -> None:
    assert Endpoint("https://api.deepseek.com", "m", "k").thinking_body() == {"thinking": {"type": "enabled"}}
    assert Endpoint("https://api.deepseek.com/v1", "m", "k", thinking="off").thinking_body() == {
        "thinking": {"type": "disabled"}
    }
    assert Endpoint("http://localhost:8000/v1", "m", "k").thinking_body() is None


def test_429_retry_after_is_honoured_and_capped(fake: FakeOpenAI) -> None:
    fake.script(Status(429, headers={"Retry-After": "30"}), Chat(GOOD))
    client = Client(fake)
    assert client.complete().content == GOOD
    assert len(fake.chats) == 2
    assert client.slept == [0.05]  # Retry-After 30 s, capped by retry_after_cap
    assert client.events[0] == "429 from the endpoint, retry 1/2 in 0 s"


def test_503_burst_then_success(fake: FakeOpenAI) -> None:
    fake.script(Status(503), Status(500), Chat(GOOD))
    client = Client(fake)
    reply = client.complete()
    assert reply.content == GOOD
    assert reply.attempts == 3
    assert client.slept == [0.01, 0.02]  # exponential backoff from retry_backoff
    retries = [e for e in client.events if "retry" in e]
    assert retries == ["503 from the endpoint, retry 1/2 in 0 s", "500 from the endpoint, retry 2/2 in 0 s"]


def test_5xx_retries_exhausted(fake: FakeOpenAI) -> None:
    fake.script(Status(503), Status(503), Status(503), Chat(GOOD))
    with pytest.raises(EndpointFailed, match=r"HTTP 503.*gave up after 3 attempts"):
        Client(fake).complete()
    assert len(fake.chats) == 3


@pytest.mark.parametrize("status", [400, 401, 402, 422])
def test_client_errors_are_not_retried_and_never_show_the_key(fake: FakeOpenAI, status: int) -> None:
    fake.script(Status(status, {"error": {"message": f"Incorrect API key provided: {KEY}"}}), Chat(GOOD))
    client = Client(fake)
    with pytest.raises(EndpointError) as info:
        client.complete()
    assert len(fake.chats) == 1
    assert client.slept == []
    assert f"HTTP {status}" in info.value.one_line()
    assert KEY not in info.value.one_line()
    assert KEY[:8] not in info.value.one_line()
    assert KEY[-10:] not in info.value.one_line()


def test_context_length_400(fake: FakeOpenAI) -> None:
    fake.script(Status(400, CONTEXT_400))
    with pytest.raises(ContextLengthError) as info:
        Client(fake).complete()
    assert info.value.window == 1_048_576
    assert len(fake.chats) == 1


def test_no_json_mode_falls_back_once(fake: FakeOpenAI) -> None:
    fake.script(
        Status(400, {"error": {"message": "This response_format type is unavailable now"}}),
        Chat(GOOD),
    )
    client = Client(fake)
    reply = client.complete()
    assert reply.content == GOOD
    assert reply.json_mode is False
    first, second = fake.chats
    assert "response_format" in first.json
    assert "response_format" not in second.json
    assert any("no JSON mode" in e for e in client.events)


def test_blank_reply_is_retried_once(fake: FakeOpenAI) -> None:
    fake.script(Chat("   \n  "), Chat(GOOD))
    assert Client(fake).complete().content == GOOD
    assert len(fake.chats) == 2


def test_second_blank_reply_is_returned(fake: FakeOpenAI) -> None:
    fake.script(Chat("   "), Chat("    "), Chat(GOOD))
    assert Client(fake).complete().content.strip() == ""
    assert len(fake.chats) == 2


def test_connection_reset_mid_stream_is_retried(fake: FakeOpenAI) -> None:
    fake.script(ResetAfter('{"summary": "half'), Chat(GOOD))
    transcript = Transcript()
    assert Client(fake).complete(transcript=transcript).content == GOOD
    assert len(fake.chats) == 2
    assert transcript.content == GOOD


def test_connection_resets_exhausted_keep_the_partial_text(fake: FakeOpenAI) -> None:
    fake.script(ResetAfter('{"summary": "a'), ResetAfter('{"summary": "longer text'))
    with pytest.raises(EndpointFailed) as info:
        Client(fake, max_retries=1).complete()
    assert info.value.partial == '{"summary": "longer text'
    assert len(fake.chats) == 2


def test_overall_deadline_beats_keepalives(fake: FakeOpenAI) -> None:
    fake.script(Stall(seconds=3.0))
    with pytest.raises(EndpointFailed, match="deadline"):
        Client(fake, timeout=0.4).complete()


def test_list_models_reports_max_model_len() -> None:
    models = [{"id": "served", "object": "model", "max_model_len": 32768}, {"id": "other", "object": "model"}]
    with FakeOpenAI(models=models) as server:
        listed = Client(server, model="served").list_models()
        assert [(m.id, m.max_model_len) for m in listed] == [("served", 32768), ("other", None)]
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_models_404_is_an_endpoint_error() -> None:
    missing = Raw(b'{"error": {"message": "no such route"}}', status=404)
    with FakeOpenAI(models_raw=missing) as server, pytest.raises(EndpointError, match="HTTP 404") as info:
        Client(server).list_models()
    assert not isinstance(info.value, NotJSONError)


def test_key_never_in_reprs() -> None:
    endpoint = Endpoint("https://user:pw@api.deepseek.com/v1?x=1", "m", KEY)
    assert KEY not in repr(endpoint)
    model = OpenAICompatible(endpoint)
    assert KEY not in repr(model)
    assert "pw" not in repr(model)
    assert public_url(endpoint.base_url) == "https://api.deepseek.com/v1"


def test_each_host_gets_only_its_own_key() -> None:
    env = {"DEEPSEEK_API_KEY": "ds", "OPENAI_API_KEY": "oa", "MINE": "mine"}
    deepseek, local = "https://api.deepseek.com", "http://127.0.0.1:8000/v1"
    assert find_api_key(deepseek, None, env)[0] == "ds"
    assert find_api_key(deepseek, None, {"OPENAI_API_KEY": "oa"})[0] is None  # never OpenAI's key
    assert find_api_key(local, None, env)[0] == "oa"  # never DeepSeek's key
    assert find_api_key(local, None, {"DEEPSEEK_API_KEY": "ds"})[0] is None
    assert find_api_key(local, "DEEPSEEK_API_KEY", env)[0] == "ds"  # unless named
    assert find_api_key(deepseek, "MINE", env)[0] == "mine"
    assert find_api_key(deepseek, "MISSING", env)[0] is None  # a named variable does not fall back
    assert key_variables(local, None) == ("OPENAI_API_KEY",)
    with pytest.raises(UsageError, match="MISSING"):
        require_api_key(deepseek, "MISSING", env)
    with pytest.raises(UsageError, match="DEEPSEEK_API_KEY"):
        require_api_key(deepseek, None, {})
    assert require_api_key(local, None, {}) is None  # a local server may need no key


def test_no_key_sends_no_authorization_header(fake: FakeOpenAI) -> None:
    fake.script(Chat(GOOD))
    client = Client(fake, api_key=None)
    assert client.complete().content == GOOD
    assert client.list_models()[0].id == "deepseek-flash"
    assert all("authorization" not in r.headers for r in fake.requests)


def test_401_without_a_key_says_which_variable_to_set(fake: FakeOpenAI) -> None:
    fake.script(Status(401, {"error": {"message": "Unauthorized"}}))
    with pytest.raises(EndpointError) as info:
        Client(fake, api_key=None, key_variable="OPENAI_API_KEY").complete()
    assert "set OPENAI_API_KEY" in info.value.one_line()


def test_request_body_is_json_with_max_tokens_even_without_json_mode(fake: FakeOpenAI) -> None:
    fake.script(Chat(GOOD))
    Client(fake).complete(max_tokens=77)
    raw = fake.chats[0].body
    assert json.loads(raw)["max_tokens"] == 77
    assert KEY.encode() not in raw


def test_empty_stream_falls_back_to_a_plain_request(fake: FakeOpenAI) -> None:
    fake.script(EmptyStream(), Status(400, CONTEXT_400))
    client = Client(fake)
    with pytest.raises(ContextLengthError):
        client.complete()
    first, second = fake.chats
    assert first.json["stream"] is True
    assert not second.json.get("stream")
    assert client.slept == []


def test_empty_stream_then_a_plain_reply(fake: FakeOpenAI) -> None:
    fake.script(EmptyStream(), Chat(GOOD))
    assert Client(fake).complete().content == GOOD


def test_a_server_that_ignores_stream_is_read_whole(fake: FakeOpenAI) -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": GOOD}, "finish_reason": "stop"}]
    }
    fake.script(Raw(json.dumps(body).encode()))
    assert Client(fake).complete().content == GOOD


@pytest.mark.parametrize(
    "raw",
    [
        Raw(b"<html><body>Welcome to nginx</body></html>", "text/html"),
        Raw(b"garbage{", "application/json"),
        Raw(b'{"choices": "not a list"}', "application/json"),
        Raw(b"data: {broken\n\n", "text/event-stream"),
        Raw(b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n', "text/event-stream"),
    ],
    ids=["html", "garbage", "wrong-shape", "broken-sse", "invalid-utf8"],
)
@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_that_is_not_json_is_not_json_error(fake: FakeOpenAI, raw: Raw, stream: bool) -> None:
    fake.script(raw, raw)
    with pytest.raises(NotJSONError, match="did not return JSON") as info:
        Client(fake, stream=stream).complete()
    assert info.value.exit_code == 3
    if raw.content_type != "text/event-stream" or not stream:
        assert info.value.raw  # what it sent, for saving


@pytest.mark.parametrize(
    "raw", [Raw(b"<!doctype html><title>Open WebUI</title>", "text/html"), Raw(b'{"data": 5}'), Raw(b"")]
)
def test_models_that_is_not_json(raw: Raw) -> None:
    with FakeOpenAI(models_raw=raw) as server, pytest.raises(NotJSONError, match="check --base-url"):
        Client(server).list_models()


def test_scrub_masks_the_key_and_any_8_characters_of_it() -> None:
    key = "sk-abcdefghijklmnopqrstuvwxyz0123"
    assert scrub_key(f"echo {key} end", key) == "echo *** end"
    assert scrub_key("prefix sk-abcdef and tail uvwxyz0123 ok", key) == "prefix *** and tail *** ok"
    assert scrub_key("short sk-abc ok", key) == "short sk-abc ok"  # 6 characters: not a leak
    assert scrub_key("nothing here", key) == "nothing here"
