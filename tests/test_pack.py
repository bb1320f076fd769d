"""The packer end to end: exact prompt_tokens against HF tokenizers, determinism, budget."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

import wholerepo
from conftest import MakeRepo, git
from wholerepo.errors import BudgetError
from wholerepo.fit.kinds import rank_class
from wholerepo.tokens import get_tokenizer

STYLES = ("xml", "markdown", "plain", "json")
LINE_MODES = ("all", "sparse", "none")


def hf_count(hf: HFTokenizer, text: str) -> int:
    return len(hf.encode(text, add_special_tokens=False).ids)


CONTENT = {
    "README.md": "# Demo\n\nA ```fenced``` readme with `code`.\n\n```python\nprint(1)\n```\n",
    "pyproject.toml": '[project]\nname = "demo"\nversion = "1.0"\n',
    "src/demo/__init__.py": "",
    "src/demo/core.py": "".join(f"def f{i}(x):\n    return x * {i}  # line {i}\n\n" for i in range(30)),
    "src/demo/cjk.py": "# 数据库连接失败：请检查配置。漢字とひらがな\nname = '名前'  # 👨‍👩‍👧‍👦 🇫🇷\n",
    "src/demo/crlf.py": "a = 1\r\n\tb = 2\r\n\r\n    c = 3   \r\n",
    "src/demo/no_newline.py": "x = 'no trailing newline'",
    "src/demo/spaces.py": "   \n\t\n",
    "src/demo/markup.html": '<file path="fake">\n</file>\n]]> <&> &amp; <![CDATA[ x ]]>\n"quoted"\n',
    "docs/guide.md": "Text\n\n````\n```\nnested fence\n```\n````\n",
    "tests/test_core.py": "def test():\n    assert 1 == 1\n" * 12,
    "data/numbers.txt": "1234567890 " * 40 + "\n",
}


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(CONTENT, name="content")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("line_numbers", LINE_MODES)
def test_prompt_tokens_is_exact(hf: HFTokenizer, repo: Path, style: str, line_numbers: str) -> None:
    result = wholerepo.pack(repo, style=style, line_numbers=line_numbers, cache=False)
    assert len(result.included) == len(CONTENT)
    assert result.prompt_tokens == hf_count(hf, result.text)
    assert result.prompt_tokens == len(get_tokenizer("deepseek-v4").encode(result.text))


def test_per_file_counts_add_up_to_the_whole(hf: HFTokenizer, repo: Path) -> None:
    result = wholerepo.pack(repo, cache=False)
    text = result.text
    # In xml every section starts with '<file path=' (content has '<' escaped).
    starts = [i for i in range(len(text)) if text.startswith("<file path=", i)]
    end = text.rindex("</files>\n</repository>\n")
    assert len(starts) == len(result.included)
    sections = [text[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    frame = text[: starts[0]] + text[end:]
    by_path = {f.path: f.tokens for f in result.included}
    for section, path in zip(sections, sorted(by_path), strict=True):
        assert section.startswith(f'<file path="{path}">')
        assert hf_count(hf, section) == by_path[path]
    assert hf_count(hf, frame) + sum(by_path.values()) == result.prompt_tokens == hf_count(hf, text)


SPECIAL_TEXT = (
    "prompt = '<｜User｜>hi<｜Assistant｜>'\n"
    "# <think>reasoning</think> and <|EOT|> ｜DSML｜ <dsml:tag> </dsml:tag>\n"
    "end = '<｜end▁of▁sentence｜>'\n"
)


@pytest.mark.parametrize("style", STYLES)
def test_control_token_strings_are_neither_counted_nor_sent_as_control_tokens(
    hf: HFTokenizer, make_repo: MakeRepo, style: str
) -> None:
    root = make_repo({"chat.py": SPECIAL_TEXT, "<｜User｜>.md": "name\n"})
    result = wholerepo.pack(root, style=style, cache=False)
    ids = hf.encode(result.text, add_special_tokens=False).ids
    added = set(hf.get_added_tokens_decoder())
    assert not set(ids) & added
    assert result.prompt_tokens == len(ids)
    for marker in ("<｜User｜>", "<think>", "</think>", "<|EOT|>", "｜DSML｜", "<dsml:"):
        assert marker not in result.text
    # The file is still there, readable once the zero-width breaks are removed.
    assert "reasoning" in result.text and "hi" in result.text


def test_cold_and_warm_runs_are_identical(repo: Path) -> None:
    cold = wholerepo.pack(repo)
    warm = wholerepo.pack(repo)
    assert cold.text == warm.text
    assert cold.prompt_tokens == warm.prompt_tokens
    assert cold.manifest() == warm.manifest()
    uncached = wholerepo.pack(repo, cache=False)
    assert uncached.text == cold.text and uncached.prompt_tokens == cold.prompt_tokens


def test_deterministic_across_runs_and_clones(repo: Path, tmp_path: Path) -> None:
    first = wholerepo.pack(repo, cache=False).text
    assert wholerepo.pack(repo, cache=False).text == first
    clone = tmp_path / "a different name" / "clone"
    clone.parent.mkdir()
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert wholerepo.pack(clone, cache=False).text.encode() == first.encode()
    assert "clone" not in first and str(repo) not in first


def _big_repo(make_repo: MakeRepo) -> Path:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "value", "return", "self", "data", "index", "item"]

    def body(n: int) -> str:
        return "".join(
            f"def fn_{i}({rng.choice(words)}, {rng.choice(words)}):\n    return {rng.randint(0, 999)}\n"
            for i in range(n)
        )

    files: dict[str, str | bytes] = {
        "README.md": "# Big project\n\nUsage: run it.\n" * 3,
        "pyproject.toml": '[project]\nname = "big"\n',
        "src/big/cli.py": body(5),
    }
    for i in range(20):
        files[f"src/big/mod_{i:02d}.py"] = body(rng.randint(2, 60))
        files[f"tests/test_mod_{i:02d}.py"] = body(rng.randint(2, 60))
        files[f"docs/page_{i:02d}.md"] = "Some documentation words here.\n" * rng.randint(2, 80)
    return make_repo(files, name="big")


@pytest.mark.parametrize("style", ["xml", "json", "markdown"])
def test_budget_is_held_and_filled(hf: HFTokenizer, make_repo: MakeRepo, style: str) -> None:
    root = _big_repo(make_repo)
    full = wholerepo.pack(root, style=style, cache=False)
    assert not [f for f in full.files if f.reason == "over-budget"]
    budget = full.prompt_tokens * 2 // 5
    result = wholerepo.pack(root, style=style, budget=budget, cache=False)
    exact = hf_count(hf, result.text)
    assert exact == result.prompt_tokens <= budget
    assert exact >= 0.8 * budget
    over = [f for f in result.files if f.reason == "over-budget"]
    assert over and all(f.status == "skipped" and f.tokens > 0 for f in over)
    for f in over:
        assert f"{f.path}" not in result.text.split("\n", 3)[-1] or style != "xml"
    status = {f.path: f.status for f in result.files}
    for first in ("README.md", "pyproject.toml", "src/big/cli.py"):
        assert status[first] == "included"
    # Ranked: the included source outweighs the included tests and docs.
    included = [f for f in result.files if f.status == "included"]
    src = sum(f.tokens for f in included if rank_class(f.path) <= 1)
    rest = sum(f.tokens for f in included if rank_class(f.path) >= 2)
    assert src > rest
    assert result.manifest()["prompt_tokens"] == exact


def test_budget_boundary_is_exact(make_repo: MakeRepo) -> None:
    root = make_repo({f"m{i}.py": f"value_{i} = {i}\n" * (i + 1) for i in range(8)})
    full = wholerepo.pack(root, cache=False)
    fits = wholerepo.pack(root, cache=False, budget=full.prompt_tokens)
    assert fits.text == full.text
    short = wholerepo.pack(root, cache=False, budget=full.prompt_tokens - 1)
    assert short.prompt_tokens <= full.prompt_tokens - 1
    assert any(f.reason == "over-budget" for f in short.files)


def test_budget_too_small_for_the_frame(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    with pytest.raises(BudgetError, match="too small"):
        wholerepo.pack(root, cache=False, budget=5)


def test_pack_api_shape(repo: Path) -> None:
    result = wholerepo.pack(str(repo), cache=False)
    assert isinstance(result, wholerepo.Pack)
    assert result.tokenizer == "deepseek-v4" and result.budget == 1_048_576 and result.style == "xml"
    core = result.file("src/demo/core.py")
    assert isinstance(core, wholerepo.PackedFile)
    assert core.status == "included" and core.reason is None and core.tokens > 0
    assert core.lines == 90 and core.bytes == len(CONTENT["src/demo/core.py"].encode())
    assert core.text == CONTENT["src/demo/core.py"]
    manifest = result.manifest()
    assert manifest["prompt_tokens"] == result.prompt_tokens
    assert [f["path"] for f in manifest["files"]] == sorted(CONTENT)


def test_empty_repository_is_a_usage_error(make_repo: MakeRepo) -> None:
    from wholerepo.errors import UsageError

    root = make_repo({}, commit=False)
    with pytest.raises(UsageError, match="no files"):
        wholerepo.pack(root, cache=False)


def test_non_git_directory_is_packed_with_a_note(make_repo: MakeRepo) -> None:
    root = make_repo({".gitignore": "*.log\n", "a.py": "a = 1\n", "x.log": "no\n"}, git_init=False)
    result = wholerepo.pack(root, cache=False)
    assert not result.in_git
    assert [f.path for f in result.files] == [".gitignore", "a.py"]
    assert "not a git repository" in result.text
