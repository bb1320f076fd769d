"""Render a pack as xml, markdown, plain or json. Pure functions of their inputs.

Every file becomes one *section* that starts with a punctuation character and ends with a
newline. A newline followed by a non-space character is always a pre-tokenizer boundary of the
V4 (and OpenAI) regexes, so a section's token count does not depend on its neighbours: counts of
the header, the sections and the footer add up exactly to the count of the whole output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..languages import language_of as language_of


def number_lines(text: str, mode: str, interval: int = 10) -> str:
    """Prefix lines with their number: every line (``all``), sparse markers, or none."""
    if mode == "none" or not text:
        return text
    lines = text.split("\n")
    trailing = lines[-1] == ""
    if trailing:
        lines.pop()
    if mode == "all":
        lines = [f"{i}|{line}" for i, line in enumerate(lines, 1)]
    elif lines:
        lines[0] = "1|" + lines[0]
        every = lines[interval - 1 :: interval]
        lines[interval - 1 :: interval] = [
            f"{i}|{line}" for i, line in zip(range(interval, len(lines) + 1, interval), every, strict=True)
        ]
    return "\n".join(lines) + ("\n" if trailing else "")


@dataclass(frozen=True, slots=True)
class Entry:
    """One packed file as a style sees it."""

    path: str
    text: str  # the file's text, already numbered and redacted
    lines: int
    status: str = "included"
    language: str = ""


@dataclass(frozen=True, slots=True)
class Header:
    """Everything in the output that is not a file section."""

    tree: str
    notes: tuple[str, ...]
    line_numbers: str
    interval: int


def _line_note(header: Header) -> str:
    if header.line_numbers == "all":
        return 'Every line of a file starts with its line number and "|".'
    if header.line_numbers == "sparse":
        return (
            f'Line 1 and every {header.interval}th line of a file start with the line number and "|"; '
            "count from the nearest marker for the lines between."
        )
    return "Files are shown without line numbers."


def _intro(header: Header, files: int) -> str:
    parts = [
        f"This is a packed copy of a repository: {files} file{'' if files == 1 else 's'},"
        " chosen and ordered by wholerepo.",
        _line_note(header),
        *header.notes,
    ]
    return "\n".join(parts)


# Characters XML 1.0 forbids even as references (C0 controls but tab, LF, CR; U+FFFE, U+FFFF):
# shown as their Unicode control pictures (ESC as U+241B) so the document stays well-formed.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_PICTURES = {c: 0x2400 + c for c in range(0x20) if c not in (0x9, 0xA, 0xD)} | {
    0xFFFE: 0xFFFD,
    0xFFFF: 0xFFFD,
}


_XML_ILLEGAL_BYTES = bytes(c for c in range(0x20) if c not in (0x9, 0xA, 0xD))


def _xml_legal(text: str) -> str:
    if text.isascii():  # most source files: a byte scan in C is several times faster than re
        raw = text.encode("ascii")
        illegal = len(raw.translate(None, _XML_ILLEGAL_BYTES)) != len(raw)
    else:
        illegal = _XML_ILLEGAL.search(text) is not None
    return text.translate(_XML_PICTURES) if illegal else text


def _xml_text(text: str) -> str:
    # Escaping & and < (and the CDATA closer) is enough for well-formed XML text.
    return _xml_legal(text).replace("&", "&amp;").replace("<", "&lt;").replace("]]>", "]]&gt;")


def quoteattr(value: str) -> str:
    """A double-quoted XML attribute value."""
    escaped = _xml_legal(value).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return '"' + escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


def _backtick_fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _equals_rule(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"^=+", text, flags=re.MULTILINE)), default=0)
    return "=" * max(16, longest + 1)


def render_header(style: str, header: Header, files: int) -> str:
    intro = _intro(header, files)
    if style == "xml":
        return (
            "<repository>\n<summary>\n"
            + _xml_text(intro)
            + "\n</summary>\n<directory_tree>\n"
            + _xml_text(header.tree)
            + "</directory_tree>\n<files>\n"
        )
    if style == "markdown":
        fence = _backtick_fence(header.tree)
        return f"# Repository\n\n{intro}\n\n## Directory tree\n\n{fence}\n{header.tree}{fence}\n\n"
    if style == "plain":
        rule = _equals_rule(header.tree)
        return f"{rule}\nRepository\n{rule}\n{intro}\n\n{rule}\nDirectory tree\n{rule}\n{header.tree}\n"
    if style == "json":
        repo = {"summary": intro, "line_numbers": header.line_numbers, "tree": header.tree}
        return '{"repository": ' + json.dumps(repo, ensure_ascii=False) + ',\n"files": [\n'
    raise ValueError(style)


def render_section(style: str, entry: Entry, last: bool) -> str:
    """One file's section; ``last`` matters only to json (no trailing comma)."""
    text = entry.text if not entry.text or entry.text.endswith("\n") else entry.text + "\n"
    if style == "xml":
        attrs = f"path={quoteattr(entry.path)}"
        if entry.status != "included":
            attrs += f" status={quoteattr(entry.status)}"
        return f"<file {attrs}>\n{_xml_text(text)}</file>\n"
    # A compressed file (fit/) says so: xml and json in an attribute, markdown and plain in words.
    marked = "" if entry.status == "included" else f" ({entry.status})"
    if style == "markdown":
        fence = _backtick_fence(text)
        return f"## File: {entry.path}{marked}\n\n{fence}{entry.language}\n{text}{fence}\n\n"
    if style == "plain":
        rule = _equals_rule(text)
        return f"{rule}\nFile: {entry.path}{marked}\n{rule}\n{text}\n"
    if style == "json":
        item = {"path": entry.path, "lines": entry.lines, "content": entry.text}
        if entry.status != "included":
            item["status"] = entry.status
        return json.dumps(item, ensure_ascii=False) + ("\n" if last else ",\n")
    raise ValueError(style)


def render_footer(style: str) -> str:
    return {"xml": "</files>\n</repository>\n", "json": "]}\n"}.get(style, "")


def render_tree(paths: Sequence[str]) -> str:
    """An indented directory tree of sorted POSIX paths."""
    out: list[str] = []
    previous: list[str] = []
    for path in paths:
        parts = path.split("/")
        dirs = parts[:-1]
        common = 0
        while common < min(len(dirs), len(previous)) and dirs[common] == previous[common]:
            common += 1
        for depth in range(common, len(dirs)):
            out.append("  " * depth + dirs[depth] + "/")
        out.append("  " * len(dirs) + parts[-1])
        previous = dirs
    return "".join(line + "\n" for line in out)
