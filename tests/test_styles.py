"""Every style survives hostile content: parsers get every file back exactly."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import wholerepo
from conftest import MakeRepo
from wholerepo.packer import render as styles

HOSTILE = {
    "close.xml": '<file path="evil">\n</file>\n</files>\n</repository>\n',
    "cdata.txt": "<![CDATA[ data ]]> and ]]> alone\n",
    "amp.txt": "<&> &amp; &lt; &#10; \"quotes\" 'single'\n",
    "fence.md": "````\n```python\ncode\n```\n````\n``````` seven\n",
    "ticks.py": "s = '`'  # and ``double`` and a run of five `````\n",
    "rules.txt": "================\nFile: fake.py\n================\n" + "=" * 40 + "\nend\n",
    "json.txt": '{"path": "fake", "content": "x"},\n]}\n',
    "no_newline.py": "last line without newline",
    "empty.py": "",
    "unicode.py": "# 漢字 👨‍👩‍👧 é\n",
    'weird "name" & <x>.txt': "named oddly\n",
    "ansi.txt": "\x1b[31mred\x1b[0m\tpage\fbreak\x07bell\x7f \ufffe\n",
}


def xml_visible(text: str) -> str:
    """What XML 1.0 can carry: illegal characters become their Unicode control pictures."""
    table = {c: 0x2400 + c for c in range(0x20) if c not in (0x9, 0xA, 0xD)}
    return text.translate(table | {0xFFFE: 0xFFFD, 0xFFFF: 0xFFFD})


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(HOSTILE, name="hostile")


def exact(name: str) -> str:
    return HOSTILE[name]


@pytest.mark.parametrize("line_numbers", ["none", "all"])
def test_xml_parses_and_round_trips(repo: Path, line_numbers: str) -> None:
    result = wholerepo.pack(repo, style="xml", line_numbers=line_numbers, cache=False)
    root = ET.fromstring(result.text)
    assert root.tag == "repository"
    tree = root.find("directory_tree")
    assert tree is not None and tree.text is not None and "close.xml" in tree.text
    files = root.findall("./files/file")
    assert sorted(f.get("path") or "" for f in files) == sorted(HOSTILE)
    for elem in files:
        path = elem.get("path")
        assert path is not None
        body = elem.text or ""
        assert body.startswith("\n")
        content = exact(path)
        expected = xml_visible(styles.number_lines(content, line_numbers))
        if expected and not expected.endswith("\n"):
            expected += "\n"
        assert body[1:] == expected, path
    assert "\u241b[31mred\u241b[0m" in result.text and "\x1b" not in result.text


@pytest.mark.parametrize("line_numbers", ["none", "sparse"])
def test_markdown_fences_outlast_content(repo: Path, line_numbers: str) -> None:
    result = wholerepo.pack(repo, style="markdown", line_numbers=line_numbers, cache=False)
    text = result.text
    for path, content in HOSTILE.items():
        numbered = styles.number_lines(content, line_numbers)
        m = re.search(rf"^## File: {re.escape(path)}\n\n(`{{3,}})[a-z]*\n", text, flags=re.MULTILINE)
        assert m is not None, path
        fence = m.group(1)
        longest = max((len(r) for r in re.findall(r"`+", content)), default=0)
        assert len(fence) > longest
        start = m.end()
        end = text.index("\n" + fence + "\n", start - 1)
        body = text[start : end + 1] if numbered else text[start:end]
        assert body == (numbered if not numbered or numbered.endswith("\n") else numbered + "\n"), path


def test_json_parses_and_holds_exact_text(repo: Path) -> None:
    result = wholerepo.pack(repo, style="json", line_numbers="none", cache=False)
    doc = json.loads(result.text)
    assert set(doc) == {"repository", "files"}
    assert isinstance(doc["repository"], dict) and "close.xml" in doc["repository"]["tree"]
    got = {f["path"]: f["content"] for f in doc["files"]}
    assert got == HOSTILE
    for f in doc["files"]:
        assert set(f) >= {"path", "content"}


def test_json_with_line_numbers_parses(repo: Path) -> None:
    doc = json.loads(wholerepo.pack(repo, style="json", line_numbers="all", cache=False).text)
    got = {f["path"]: f["content"] for f in doc["files"]}
    assert got["unicode.py"] == "1|# 漢字 👨‍👩‍👧 é\n"
    assert doc["repository"]["line_numbers"] == "all"


def test_plain_separators_are_not_broken_by_content(repo: Path) -> None:
    text = wholerepo.pack(repo, style="plain", line_numbers="none", cache=False).text
    lines = text.split("\n")
    for path, content in HOSTILE.items():
        i = lines.index(f"File: {path}")
        rule = lines[i - 1]
        assert re.fullmatch("=+", rule) and lines[i + 1] == rule
        body_lines = content.split("\n")
        # No line of the file is as long a rule as its own separator.
        assert all(not (re.fullmatch("=+", ln) and len(ln) >= len(rule)) for ln in body_lines)
        start = sum(len(ln) + 1 for ln in lines[: i + 2])
        assert text[start:].startswith(content), path


def test_number_lines_modes() -> None:
    text = "".join(f"l{i}\n" for i in range(1, 23))
    assert styles.number_lines(text, "none") == text
    every = styles.number_lines(text, "all").splitlines()
    assert every[0] == "1|l1" and every[21] == "22|l22"
    sparse = styles.number_lines(text, "sparse").splitlines()
    assert [ln for ln in sparse if "|" in ln] == ["1|l1", "10|l10", "20|l20"]
    assert styles.number_lines("a\r\nb", "all") == "1|a\r\n2|b"
    assert styles.number_lines("", "all") == ""


def test_render_tree() -> None:
    assert styles.render_tree(["README.md", "src/a/b.py", "src/a/c.py", "src/d.py", "z.py"]) == (
        "README.md\nsrc/\n  a/\n    b.py\n    c.py\n  d.py\nz.py\n"
    )


@pytest.mark.parametrize("style", ["xml", "markdown", "plain", "json"])
def test_a_pack_with_every_file_skipped_is_still_well_formed(make_repo: MakeRepo, style: str) -> None:
    root = make_repo({"blob.py": b"\x00\x01\x02", "yarn.lock": "# lock\n"})
    result = wholerepo.pack(root, style=style, cache=False)
    assert result.included == () and len(result.files) == 2
    assert "2 listed files are not shown" in result.text
    if style == "xml":
        assert ET.fromstring(result.text).findall("./files/file") == []
    if style == "json":
        assert json.loads(result.text)["files"] == []
