"""The endpoint client against a real HTTP server on 127.0.0.1 (tests/fake_openai.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fake_openai import CONTEXT_400, Chat, EmptyStream, FakeOpenAI, ResetAfter, Stall, Status, usage
from wholerepo.client import (
    ChatClient,
    ContextLengthError,
    Endpoint,
    EndpointFailed,
    Transcript,
    find_api_key,
    public_url,
    require_api_key,
)
from wholerepo.errors import EndpointError, UsageError

KEY = "sk-test-7f3a9c1e5b2d4a6f8e0c"
GOOD = '{"summary": "fine", "findings": []}'


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def client_for(fake: FakeOpenAI, **overrides: object) -> tuple[ChatClient, list[float]]:
    slept: list[float] = []
    options: dict[str, object] = {
        "base_url": fake.url,
        "model": "deepseek-flash",
        "api_key": KEY,
        "timeout": 20.0,
        "max_retries": 2,
        "retry_backoff": 0.01,
        "retry_after_cap": 0.05,
    }
    options.update(overrides)
    endpoint = Endpoint(**options)  # type: ignore[arg-type]
    return ChatClient(endpoint, sleep=slept.append), slept


def test_request_shape_streaming_with_keepalives(fake: FakeOpenAI) -> None:
    fake.script(
        Chat(GOOD, usage=usage(1000, 50, hit=900, reasoning=7), reasoning="thinking...", keepalives=3)
    )
    client, _ = client_for(fake)
    reply = client.complete("SYS", "USER", max_tokens=321)
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
    client, _ = client_for(fake, stream=False)
    reply = client.complete("s", "u", max_tokens=5)
    assert reply.content == GOOD
    assert reply.reasoning == "hmm"
    assert fake.chats[0].json.get("stream") in (None, False)


@pytest.mark.parametrize(("thinking", "expected"), [("on", "enabled"), ("off", "disabled")])
def test_thinking_sent_when_asked(fake: FakeOpenAI, thinking: str, expected: str) -> None:
    fake.script(Chat(GOOD))
    client, _ = client_for(fake, thinking=thinking)
    client.complete("s", "u", max_tokens=5)
    assert fake.chats[0].json["thinking"] == {"type": expected}


def test_thinking_auto_only_for_deepseek() -> None:
    assert Endpoint("https://api.deepseek.com", "m", "k").thinking_body() == {"thinking": {"type": "enabled"}}
    assert Endpoint("https://api.deepseek.com/v1", "m", "k", thinking="off").thinking_body() == {
        "thinking": {"type": "disabled"}
    }
    assert Endpoint("http://localhost:8000/v1", "m", "k").thinking_body() is None


def test_429_retry_after_is_honoured_and_capped(fake: FakeOpenAI) -> None:
    fake.script(Status(429, headers={"Retry-After": "30"}), Chat(GOOD))
    client, slept = client_for(fake)
    assert client.complete("s", "u", max_tokens=5).content == GOOD
    assert len(fake.chats) == 2
    assert slept == [0.05]  # Retry-After 30 s, capped by retry_after_cap


def test_503_burst_then_success(fake: FakeOpenAI) -> None:
    fake.script(Status(503), Status(500), Chat(GOOD))
    client, slept = client_for(fake)
    reply = client.complete("s", "u", max_tokens=5)
    assert reply.content == GOOD
    assert reply.attempts == 3
    assert slept == [0.01, 0.02]  # exponential backoff from retry_backoff


def test_5xx_retries_exhausted(fake: FakeOpenAI) -> None:
    fake.script(Status(503), Status(503), Status(503), Chat(GOOD))
    client, _ = client_for(fake)
    with pytest.raises(EndpointFailed, match=r"HTTP 503.*gave up after 3 attempts"):
        client.complete("s", "u", max_tokens=5)
    assert len(fake.chats) == 3


@pytest.mark.parametrize("status", [400, 401, 402, 422])
def test_client_errors_are_not_retried_and_never_show_the_key(fake: FakeOpenAI, status: int) -> None:
    fake.script(Status(status, {"error": {"message": f"Incorrect API key provided: {KEY}"}}), Chat(GOOD))
    client, slept = client_for(fake)
    with pytest.raises(EndpointError) as info:
        client.complete("s", "u", max_tokens=5)
    assert len(fake.chats) == 1
    assert slept == []
    assert f"HTTP {status}" in info.value.one_line()
    assert KEY not in info.value.one_line()
    assert KEY[:8] not in info.value.one_line()


def test_context_length_400(fake: FakeOpenAI) -> None:
    fake.script(Status(400, CONTEXT_400))
    client, _ = client_for(fake)
    with pytest.raises(ContextLengthError) as info:
        client.complete("s", "u", max_tokens=5)
    assert info.value.window == 1_048_576
    assert len(fake.chats) == 1


def test_no_json_mode_falls_back_once(fake: FakeOpenAI) -> None:
    fake.script(
        Status(400, {"error": {"message": "This response_format type is unavailable now"}}),
        Chat(GOOD),
    )
    client, _ = client_for(fake)
    reply = client.complete("s", "u", max_tokens=5)
    assert reply.content == GOOD
    assert reply.json_mode is False
    first, second = fake.chats
    assert "response_format" in first.json
    assert "response_format" not in second.json


def test_blank_reply_is_retried_once(fake: FakeOpenAI) -> None:
    fake.script(Chat("   \n  "), Chat(GOOD))
    client, _ = client_for(fake)
    assert client.complete("s", "u", max_tokens=5).content == GOOD
    assert len(fake.chats) == 2


def test_second_blank_reply_is_returned(fake: FakeOpenAI) -> None:
    fake.script(Chat("   "), Chat("    "), Chat(GOOD))
    client, _ = client_for(fake)
    assert client.complete("s", "u", max_tokens=5).content.strip() == ""
    assert len(fake.chats) == 2


def test_connection_reset_mid_stream_is_retried(fake: FakeOpenAI) -> None:
    fake.script(ResetAfter('{"summary": "half'), Chat(GOOD))
    client, _ = client_for(fake)
    transcript = Transcript()
    assert client.complete("s", "u", max_tokens=5, transcript=transcript).content == GOOD
    assert len(fake.chats) == 2
    assert transcript.content == GOOD


def test_connection_resets_exhausted_keep_the_partial_text(fake: FakeOpenAI) -> None:
    fake.script(ResetAfter('{"summary": "a'), ResetAfter('{"summary": "longer text'))
    client, _ = client_for(fake, max_retries=1)
    with pytest.raises(EndpointFailed) as info:
        client.complete("s", "u", max_tokens=5)
    assert info.value.partial == '{"summary": "longer text'
    assert len(fake.chats) == 2


def test_overall_deadline_beats_keepalives(fake: FakeOpenAI) -> None:
    fake.script(Stall(seconds=3.0))
    client, _ = client_for(fake, timeout=0.4)
    with pytest.raises(EndpointFailed, match="deadline"):
        client.complete("s", "u", max_tokens=5)


def test_list_models_reports_max_model_len() -> None:
    models = [{"id": "served", "object": "model", "max_model_len": 32768}, {"id": "other", "object": "model"}]
    with FakeOpenAI(models=models) as server:
        client, _ = client_for(server, model="served")
        listed = client.list_models()
        assert [(m.id, m.max_model_len) for m in listed] == [("served", 32768), ("other", None)]
        assert client.context_window() == 32768
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_context_window_unknown_when_models_fails(fake: FakeOpenAI) -> None:
    client, _ = client_for(fake, base_url=fake.url.replace("/v1", "/nowhere"))
    assert client.context_window() is None


def test_key_never_in_reprs() -> None:
    endpoint = Endpoint("https://user:pw@api.deepseek.com/v1?x=1", "m", KEY)
    assert KEY not in repr(endpoint)
    client = ChatClient(endpoint)
    assert KEY not in repr(client)
    assert "pw" not in repr(client)
    assert public_url(endpoint.base_url) == "https://api.deepseek.com/v1"


def test_api_key_lookup_order() -> None:
    env = {"DEEPSEEK_API_KEY": "ds", "OPENAI_API_KEY": "oa", "MINE": "mine"}
    assert find_api_key(None, env)[0] == "ds"
    assert find_api_key(None, {"OPENAI_API_KEY": "oa"})[0] == "oa"
    assert find_api_key("MINE", env)[0] == "mine"
    assert find_api_key("MISSING", env)[0] is None  # a named variable does not fall back
    with pytest.raises(UsageError, match="MISSING"):
        require_api_key("MISSING", env)


def test_request_body_is_json_with_max_tokens_even_without_json_mode(fake: FakeOpenAI) -> None:
    fake.script(Chat(GOOD))
    client, _ = client_for(fake)
    client.complete("s", "u", max_tokens=77)
    raw = fake.chats[0].body
    assert json.loads(raw)["max_tokens"] == 77
    assert KEY.encode() not in raw


def test_empty_stream_falls_back_to_a_plain_request(fake: FakeOpenAI) -> None:
    fake.script(EmptyStream(), Status(400, CONTEXT_400))
    client, slept = client_for(fake)
    with pytest.raises(ContextLengthError):
        client.complete("s", "u", max_tokens=5)
    first, second = fake.chats
    assert first.json["stream"] is True
    assert not second.json.get("stream")
    assert slept == []


def test_empty_stream_then_a_plain_reply(fake: FakeOpenAI) -> None:
    fake.script(EmptyStream(), Chat(GOOD))
    client, _ = client_for(fake)
    assert client.complete("s", "u", max_tokens=5).content == GOOD
