"""What a file's path says about its text: documentation and tests, or configuration."""

from __future__ import annotations

import re

from .text import Lines, replace, resolve

_EXAMPLE_PATH = re.compile(
    r"(?:^|/)(?:tests?|testing|spec|specs|__tests__|fixtures?|testdata|test_data|docs?|examples?)/|"
    r"(?:^|/)test_[^/]*$|_test\.[^/]+$|[._-](?:test|spec)\.[^/]+$|(?:^|/)conftest\.py$|"
    r"\.(?:md|rst|adoc|txt)$",
    re.IGNORECASE,
)
# A template or a copy of one keeps its kind: app.env.example, values.yaml.j2, .ini.dist.
_TEMPLATE_SUFFIXES = (
    r"(?:\.(?:example|sample|dist|template|tpl|tmpl|j2|jinja2?|erb|in|orig|bak|local|default|defaults|"
    r"dev|development|prod|production|staging|test)){0,3}$"
)
_CONFIG_PATH = re.compile(
    r"\.(?:ya?ml|ini|cfg|cnf|conf|properties|toml|env|envrc|sh|bash|zsh|tf|tfvars|hcl)"
    + _TEMPLATE_SUFFIXES
    + r"|(?:^|/)(?:\.env[^/]*|[^/]+\.env|Dockerfile[^/]*|Makefile|Procfile|credentials|config|\.s3cfg|\.boto)"
    + _TEMPLATE_SUFFIXES,
    re.IGNORECASE,
)


def is_example_path(path: str) -> bool:
    """Tests, fixtures and documentation: there a short password is a stand-in, not a credential."""
    return bool(_EXAMPLE_PATH.search(path))


def is_config_path(path: str) -> bool:
    """Configuration files, where ``name = value`` lines hold values without quotes."""
    return bool(_CONFIG_PATH.search(path))


_RUN = re.compile(r"[A-Za-z0-9+=_\-:~]{16,4096}")
_DIGIT_OR_CAPITAL = re.compile(r"[0-9A-Z]")


def _may_hold_token(path: str) -> bool:
    """A run of 16+ token characters with a digit or a capital: short of that no format fits."""
    return any(_DIGIT_OR_CAPITAL.search(run) for run in _RUN.findall(path))


def redact_path(path: str) -> tuple[str, tuple[str, ...]]:
    """``path`` with every token in its file and directory names replaced, and their kinds.

    Each name is examined on its own, by the token formats (rules.py): a name never spans two.
    The same function decides which files are skipped for their name and how every name is
    shown, so the two always agree.
    """
    if not _may_hold_token(path):
        return path, ()
    from .rules import RULES, find_tokens  # only for the rare path that may hold one

    spans, at = [], 0
    for name in path.split("/"):
        spans.append((at, at + len(name)))
        at += len(name) + 1
    kinds: list[str] = []
    for _ in range(4):
        secrets = resolve(path, list(find_tokens(RULES, Lines(path, spans))))
        if not secrets:
            break
        path = replace(path, secrets)
        kinds += (s.kind for s in secrets)
        spans, at = [], 0
        for name in path.split("/"):
            spans.append((at, at + len(name)))
            at += len(name) + 1
    return path, tuple(kinds)


def path_holds_secret(path: str) -> bool:
    """Whether a file or directory name in ``path`` holds a secret."""
    return bool(redact_path(path)[1])
