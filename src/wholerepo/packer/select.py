"""Decisions from a file's path and git's view of it: keep it, or skip it with a reason. Pure.

The selection rules (-i/-e, .wholerepoignore files), files that hold credentials by name,
lockfiles, minified names, vendored trees; decisions that need the content are in decode.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..git.listing import MAX_IGNORE_PATTERNS, MAX_STARS_PER_SEGMENT, Candidate, costly_pattern
from ..types import SkipReason

if TYPE_CHECKING:
    import pathspec


Reason = SkipReason  # the short name this stage uses


LOCKFILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "bun.lock",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "pdm.lock",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "packages.lock.json",
        "mix.lock",
        "pubspec.lock",
        "Podfile.lock",
        "flake.lock",
        "gradle.lockfile",
        "conda-lock.yml",
        "Package.resolved",
        "deno.lock",
    }
)

# Files that hold credentials by convention: never uploaded, whatever they contain.
SECRET_NAMES = frozenset(
    {
        ".env",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        ".npmrc",
        ".pypirc",
        ".netrc",
        "_netrc",  # .netrc on Windows
        ".htpasswd",
        "credentials.json",
        ".git-credentials",
        ".dockercfg",
        ".pgpass",
        "pgpass.conf",  # .pgpass on Windows
        ".s3cfg",  # s3cmd
        ".boto",  # boto / gsutil
        ".passwd-s3fs",
        ".vault-token",
        "application_default_credentials.json",  # gcloud
        "credentials.tfrc.json",  # Terraform Cloud
        ".terraformrc",  # Terraform CLI configuration: credentials blocks
        "terraform.rc",  # .terraformrc on Windows
        ".gitcookies",  # git's http.cookiefile: Gerrit and Google source hosts
        "credentials.csv",  # the AWS console's download of a new user's access keys
        "accessKeys.csv",  # the AWS console's download of an access key
        "rootkey.csv",  # the AWS console's old download of the root account's key
        ".bash_history",  # shell histories: passwords typed on command lines
        ".zsh_history",
        ".psql_history",
        ".mysql_history",
        ".rediscli_history",
    }
)
# Files whose name alone is common (config, credentials) but that hold credentials in these
# directories: Docker's and the AWS, Kubernetes, Cargo, RubyGems, GitHub and Azure CLIs'.
SECRET_PATHS = (
    ".docker/config.json",
    ".aws/credentials",
    ".kube/config",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".config/gh/hosts.yml",
    ".azure/accessTokens.json",
    ".azure/msal_token_cache.json",
)
_SECRET_PATH_NAMES = frozenset(p.rsplit("/", 1)[-1] for p in SECRET_PATHS)
# Terraform state holds every resource's attributes, passwords and keys included, in plain text.
SECRET_SUFFIXES = (
    *(".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".ppk"),
    *(".tfstate", ".tfstate.backup"),  # Terraform state: every resource's passwords and keys, in plain text
    *("_accessKeys.csv", "_credentials.csv"),  # the AWS console names them user_accessKeys.csv
)
SECRET_TEMPLATES = (".example", ".sample", ".template", ".dist", ".defaults")


def is_secret_file(path: str) -> bool:
    """Files that by convention hold credentials (.env, private keys, keystores, ~/.aws/credentials).

    ``path`` is relative to the repository's root, or a bare file name.
    """
    name = path.rsplit("/", 1)[-1]
    if name in SECRET_NAMES or name.endswith(SECRET_SUFFIXES):
        return True
    if name in _SECRET_PATH_NAMES and any(path == p or path.endswith("/" + p) for p in SECRET_PATHS):
        return True
    return name.startswith(".env.") and not name.endswith(SECRET_TEMPLATES)


def names_a_secret(path: str) -> bool:
    """Whether a file or directory name in ``path`` holds a secret (a token in a name)."""
    from ..redact.paths import path_holds_secret  # most paths never need the rules

    return path_holds_secret(path)


# What pathspec raises for a pattern it cannot compile: its own ValueError, or the regex engine's
# error for what passes its parser ("[z-a]": a bad character range).
BAD_PATTERN = (ValueError, re.error)

_MINIFIED_NAME = re.compile(r"\.min\.(js|css|mjs)$|[.-]bundle\.js$")
IGNORE_FILE = ".wholerepoignore"

# Directories that hold other people's code, installed rather than written here: skipped with
# reason "vendored" when git does not ignore them. Virtual environments are recognised by their
# pyvenv.cfg, Go and Composer vendor trees by the file their tool writes there.
VENDORED_DIRS = frozenset(
    {"node_modules", "bower_components", "jspm_packages", "site-packages", "dist-packages", "__pypackages__"}
)
_VENDOR_MARKERS = {
    "pyvenv.cfg": None,
    "modules.txt": "vendor",
    "autoload.php": "vendor",
    "Manifest.lock": "Pods",
}
# The name of wholerepo's raw-reply file; its other outputs are recognised by content (decode.py).
OWN_OUTPUT_NAMES = frozenset({"review.raw.txt"})


def vendored_roots(paths: Iterable[str]) -> frozenset[str]:
    """Directories ("a/b/") that hold a vendored tree, judged by the marker files listed in them."""
    roots = set()
    for path in paths:
        directory, _, name = path.rpartition("/")
        if name not in _VENDOR_MARKERS or not directory:
            continue
        expected = _VENDOR_MARKERS[name]
        if expected is None or directory.rsplit("/", 1)[-1] == expected:
            roots.add(directory + "/")
    return frozenset(roots)


def unmatched_patterns(patterns: Iterable[str], paths: list[str]) -> list[str]:
    """The gitignore-syntax ``patterns`` that match none of ``paths``."""
    import pathspec

    unmatched = []
    for pattern in patterns:
        try:
            spec = pathspec.GitIgnoreSpec.from_lines([pattern])
        except BAD_PATTERN:
            unmatched.append(pattern)
            continue
        if not any(spec.match_file(p) for p in paths):
            unmatched.append(pattern)
    return unmatched


@dataclass(frozen=True, slots=True)
class Rules:
    """The user's selection rules, compiled once."""

    include: pathspec.GitIgnoreSpec | None
    exclude: pathspec.GitIgnoreSpec | None
    max_file_size: int
    skip_secret_files: bool = True
    # Every .wholerepoignore by its directory, relative to the repository root ("", "pkg/", ...).
    # Like .gitignore files, each matches paths relative to its own directory, and a deeper one
    # decides after a shallower one.
    ignores: Mapping[str, pathspec.GitIgnoreSpec] = field(default_factory=dict)
    root_prefix: str = ""  # the packed directory relative to the repository root ("" or "pkg/")
    vendored: frozenset[str] = frozenset()  # directories ("a/b/") holding vendored trees
    warnings: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        include: Iterable[str],
        exclude: Iterable[str],
        ignore_lines: Iterable[str] | None,
        max_file_size: int,
        skip_secret_files: bool = True,
        *,
        ignore_files: Mapping[str, Iterable[str]] | None = None,
        root_prefix: str = "",
        vendored: frozenset[str] = frozenset(),
    ) -> Rules:
        """``ignore_lines``: the packed directory's file; ``ignore_files``: any others, by directory.

        A bad pattern in a -i/-e flag is a usage error; in an ignore file (which a pull request
        can change) it is skipped with a warning, so no commit can break every review.
        """
        files = dict(ignore_files or {})
        if ignore_lines is not None:
            files[root_prefix] = ignore_lines
        warnings: list[str] = []
        specs = {}
        room = MAX_IGNORE_PATTERNS  # every pattern is tried on every file: a bound on the work
        for base, lines in sorted(files.items()):  # shallower files first: they decide first
            patterns = _pattern_lines(lines)
            if len(patterns) > room:
                warnings.append(
                    f"{base}{IGNORE_FILE}: only {room:,} of its {len(patterns):,} patterns are used"
                    f" (at most {MAX_IGNORE_PATTERNS:,} in all .wholerepoignore files)"
                )
                patterns = patterns[:room]
            room -= len(patterns)
            spec = _lenient_spec(patterns, f"{base}{IGNORE_FILE}", warnings)
            if spec is not None:
                specs[base] = spec
        return cls(
            _strict_spec(list(include), "--include"),
            _strict_spec(list(exclude), "--exclude"),
            max_file_size,
            skip_secret_files,
            specs,
            root_prefix,
            vendored,
            tuple(warnings),
        )

    def is_vendored(self, path: str) -> bool:
        parts = path.split("/")[:-1]
        if not parts:
            return False
        if VENDORED_DIRS.intersection(parts):
            return True
        directory = ""
        for part in parts:
            directory += part + "/"
            if directory in self.vendored:
                return True
        return False

    def ignored(self, path: str) -> bool:
        """Whether the .wholerepoignore files leave ``path`` out; the nearer file decides last."""
        if not self.ignores:
            return False
        full = self.root_prefix + path
        verdict = False
        cut = 0
        while cut >= 0:  # the directories holding ``full``, from the repository root down
            spec = self.ignores.get(full[:cut])
            if spec is not None:
                result = spec.check_file(full[cut:])
                if result.include is not None:
                    verdict = bool(result.include)
            cut = full.find("/", cut) + 1 or -1
        return verdict


def _pattern_lines(lines: Iterable[str] | None) -> list[str]:
    return [line for line in lines or [] if line.strip() and not line.startswith("#")]


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    if not lines:
        return None
    import pathspec  # imported on demand: it costs start-up time most runs do not need

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _strict_spec(lines: list[str], where: str) -> pathspec.GitIgnoreSpec | None:
    try:
        return _spec(lines)
    except BAD_PATTERN:
        for line in lines:
            try:
                _spec([line])
            except BAD_PATTERN as exc:
                raise UsageError(f"{where} {line!r} is not a valid pattern: {exc}") from None
        raise


def _lenient_spec(lines: list[str], where: str, warnings: list[str]) -> pathspec.GitIgnoreSpec | None:
    costly = [line for line in lines if costly_pattern(line)]
    for line in costly:
        warnings.append(
            f"{where}: pattern {line!r} has more than {MAX_STARS_PER_SEGMENT} '*' in one path segment"
            " (too slow to match) and was skipped"
        )
    lines = [line for line in lines if line not in costly]
    try:
        return _spec(lines)
    except BAD_PATTERN:
        good = []
        for line in lines:
            try:
                _spec([line])
                good.append(line)
            except BAD_PATTERN:
                warnings.append(f"{where}: pattern {line!r} is not valid and was skipped")
        return _spec(good)


def by_path(candidate: Candidate, rules: Rules) -> Reason | None:
    """Decide what can be decided from the path and git's view alone.

    The selection patterns match the name as the file system spells it (as git's own patterns
    do); the conventions about names (secrets, lockfiles...) read the name as shown.
    """
    if candidate.kind == "symlink":
        return Reason.SYMLINK
    if candidate.kind == "submodule":
        return Reason.SUBMODULE
    if candidate.kind == "missing":
        return Reason.MISSING
    if candidate.kind == "special":
        return Reason.SPECIAL
    path = candidate.path
    raw = candidate.fs_path
    if rules.ignored(raw):
        return Reason.IGNORED
    if rules.include is not None and not rules.include.match_file(raw):
        return Reason.EXCLUDED
    if rules.exclude is not None and rules.exclude.match_file(raw):
        return Reason.EXCLUDED
    name = path.rsplit("/", 1)[-1]
    if rules.skip_secret_files and (is_secret_file(path) or names_a_secret(path)):
        return Reason.SECRET
    if name in OWN_OUTPUT_NAMES:
        return Reason.OWN_OUTPUT
    if "linguist-vendored" in candidate.attributes or rules.is_vendored(raw):
        return Reason.VENDORED
    if "linguist-generated" in candidate.attributes:
        return Reason.GENERATED
    if name in LOCKFILES:
        return Reason.LOCKFILE
    if _MINIFIED_NAME.search(name):
        return Reason.MINIFIED
    return None
