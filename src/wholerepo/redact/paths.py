"""What a file's path says about its text: documentation and tests, or configuration."""

from __future__ import annotations

import re

_EXAMPLE_PATH = re.compile(
    r"(?:^|/)(?:tests?|testing|spec|specs|__tests__|fixtures?|testdata|test_data|docs?|examples?)/|"
    r"(?:^|/)test_[^/]*$|_test\.[^/]+$|[._-](?:test|spec)\.[^/]+$|(?:^|/)conftest\.py$|"
    r"\.(?:md|rst|adoc|txt)$",
    re.IGNORECASE,
)
_CONFIG_PATH = re.compile(
    r"\.(?:ya?ml|ini|cfg|cnf|conf|properties|toml|env|sh|bash|zsh|tf|tfvars|hcl)$|"
    r"(?:^|/)(?:\.env[^/]*|Dockerfile[^/]*|Makefile|Procfile|credentials|config|\.s3cfg|\.boto)$",
    re.IGNORECASE,
)


def is_example_path(path: str) -> bool:
    """Tests, fixtures and documentation: there a short password is a stand-in, not a credential."""
    return bool(_EXAMPLE_PATH.search(path))


def is_config_path(path: str) -> bool:
    """Configuration files, where ``name = value`` lines hold values without quotes."""
    return bool(_CONFIG_PATH.search(path))
