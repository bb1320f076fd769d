"""The leak corpus (tests/data/secrets/leak_*.txt) packed through the CLI: every secret goes,
every look-alike stays, credential files and names that hold a token are never shown.

The corpus files are templates: ``%%KIND:SPEC%%`` stands where a secret goes. The test fills it
with a value generated from a fixed seed (so no file here holds a credential-shaped literal)
and expects exactly that value, and nothing else, to be replaced by ``[REDACTED:KIND]``.

SPEC is parts joined by "+": ``hex:N``, ``alnum:N``, ``letters:N``, ``upper:N``, ``lower:N``, ``b64:N``,
``age:N`` (random characters of that alphabet), ``pw`` (a password), ``pw@`` (one with an
"@" in it), ``b64pw`` (a password in base64), ``basic`` (``deploy:password`` in base64); any
other part is literal text.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from pathlib import Path

from click.testing import CliRunner

import wholerepo
from conftest import MakeRepo, git
from test_redact import ALNUM, DATA, rand
from wholerepo.cli import main
from wholerepo.packer import summarize
from wholerepo.redact import Redactor, placeholder

ALPHABETS = {
    "hex": "0123456789abcdef",
    "alnum": ALNUM,
    "letters": string.ascii_letters,
    "upper": string.ascii_uppercase + string.digits,
    "lower": string.ascii_lowercase + string.digits,
    "b64": ALNUM + "+/",
    "age": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
}
MARK = re.compile(r"%%([a-z0-9-]+):(.*?)%%")


def password(seed: str) -> str:
    """14 characters: lower and upper case, digits and a symbol, none that ends a value."""
    rng = random.Random(seed)
    chars = [
        rng.choice(string.ascii_lowercase),
        rng.choice(string.ascii_uppercase),
        rng.choice(string.digits),
    ]
    chars += [rng.choice("!#^*-_")] + [rng.choice(ALNUM + "!#^*") for _ in range(10)]
    rng.shuffle(chars)
    return "".join(chars)


def generate(spec: str, seed: str) -> str:
    parts = []
    for i, part in enumerate(spec.split("+")):
        kind, _, size = part.partition(":")
        if kind in ALPHABETS and size.isdigit():
            parts.append(rand(f"{seed}:{i}", ALPHABETS[kind], int(size)))
        elif part == "pw":
            parts.append(password(f"{seed}:{i}"))
        elif part == "pw@":
            pw = password(f"{seed}:{i}")
            parts.append(pw[:6] + "@" + pw[6:])
        elif part == "b64pw":
            parts.append(base64.b64encode(password(f"{seed}:{i}").encode()).decode())
        elif part == "basic":
            parts.append(base64.b64encode(("deploy:" + password(f"{seed}:{i}")).encode()).decode())
        else:
            parts.append(part)
    return "".join(parts)


def fill(name: str, template: str) -> tuple[str, str, list[str]]:
    """The file as packed, as expected once redacted, and the secret values in it."""
    text, expected, values = [], [], []
    at = 0
    for n, m in enumerate(MARK.finditer(template)):
        value = generate(m.group(2), f"{name}:{n}")
        text += [template[at : m.start()], value]
        expected += [template[at : m.start()], placeholder(m.group(1))]
        values.append(value)
        at = m.end()
    text.append(template[at:])
    expected.append(template[at:])
    return "".join(text), "".join(expected), values


def corpus() -> dict[str, tuple[str, str, list[str]]]:
    names = json.loads((DATA / "leak-names.json").read_text(encoding="utf-8"))
    return {
        target: fill(source, (DATA / source).read_text(encoding="utf-8")) for source, target in names.items()
    }


def bait() -> dict[str, str]:
    names = json.loads((DATA / "bait-names.json").read_text(encoding="utf-8"))
    return {target: (DATA / source).read_text(encoding="utf-8") for source, target in names.items()}


# Files whose whole purpose is credentials: skipped, whatever they hold.
CREDENTIAL_FILES = {
    "_netrc": "machine api.example.com login ci password {}\n",
    "home/.netrc": "machine api.example.com login ci password {}\n",
    ".docker/config.json": '{"auths": {"ghcr.io": {"auth": "{}"}}}\n',
    ".aws/credentials": "[default]\naws_secret_access_key = {}\n",
    ".pgpass": "db.internal:5432:shop:shop:{}\n",
    "ops/.git-credentials": "https://ci:{}@github.com\n",
    ".s3cfg": "[default]\nsecret_key = {}\n",
    ".boto": "[Credentials]\ngs_secret_access_key = {}\n",
    ".kube/config": "users:\n- name: ci\n  user:\n    token: {}\n",
    "tools/.cargo/credentials.toml": '[registry]\ntoken = "{}"\n',
    "ops/ci_accessKeys.csv": "Access key ID,Secret access key\nAKIA,{}\n",
    "infra/prod/terraform.tfstate": '{"resources": [{"instances": [{"attributes": {"password": "{}"}}]}]}\n',
    ".gitcookies": "source.developers.google.com\tFALSE\t/\tTRUE\t2147483647\to\t{}\n",
    "home/.bash_history": "mysql -u root -p{} shop\n",
}
TOKEN_IN_FILE_NAME = "gh" + "p_" + rand("name-file", ALNUM, 36)
TOKEN_IN_DIR_NAME = "AK" + "IA" + rand("name-dir", string.ascii_uppercase + string.digits, 16)
NAMED = {
    f"keys/{TOKEN_IN_FILE_NAME}.txt": "a file named after a token\n",
    f"cache/{TOKEN_IN_DIR_NAME}/settings.py": "DEBUG = True\n",
}


def leaky_repo(make_repo: MakeRepo) -> tuple[Path, list[str]]:
    files: dict[str, str] = {}
    values: list[str] = []
    for path, (text, _, found) in corpus().items():
        files[path] = text
        values += found
    files.update(bait())
    for i, (path, line) in enumerate(CREDENTIAL_FILES.items()):
        secret = "Cred" + rand(f"cred{i}", ALNUM, 24)
        files[path] = line.replace("{}", secret)
        values.append(secret)
    files.update(NAMED)
    values += [TOKEN_IN_FILE_NAME, TOKEN_IN_DIR_NAME]
    files["README.md"] = "# shop\n"
    return make_repo(files, name="leaky"), values


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_leak_template_has_secrets_and_each_value_is_distinct() -> None:
    values = [v for _, _, found in corpus().values() for v in found]
    assert len(corpus()) >= 8 and len(values) >= 40
    assert len(set(values)) == len(values)


def test_each_shape_is_redacted_and_nothing_else_changes() -> None:
    redactor = Redactor()
    for path, (text, expected, _) in corpus().items():
        redacted, _ = redactor.redact(path, text)
        assert redacted == expected, path
        assert redactor.redact(path, redacted) == (redacted, ())


def test_packing_the_corpus_through_the_cli_leaks_nothing(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo, values = leaky_repo(make_repo)
    out, manifest_file = tmp_path / "pack.xml", tmp_path / "manifest.json"
    run("pack", str(repo), "-o", str(out), "--manifest", str(manifest_file), "--no-cache")
    packed, manifest = out.read_text(encoding="utf-8"), manifest_file.read_text(encoding="utf-8")
    assert [v for v in values if v in packed or v in manifest] == []
    assert [v for v in values if json.dumps(v)[1:-1] in packed] == []  # nor JSON-escaped
    assert packed.count("[REDACTED:") == sum(len(found) for _, _, found in corpus().values())

    entries = {e["path"]: e for e in json.loads(manifest)["files"]}
    for path in CREDENTIAL_FILES:
        assert (entries[path]["status"], entries[path]["reason"]) == ("skipped", "secret"), path
    named = {
        "keys/" + placeholder("github-token") + ".txt",
        "cache/" + placeholder("aws-access-key") + "/settings.py",
    }
    for path in named:
        assert (entries[path]["status"], entries[path]["reason"]) == ("skipped", "secret"), path


def test_the_pack_holds_each_file_with_only_its_secrets_replaced(make_repo: MakeRepo) -> None:
    repo, _ = leaky_repo(make_repo)
    pack = wholerepo.pack(repo, cache=False)
    for path, (_, expected, found) in corpus().items():
        packed = pack.file(path)
        assert packed is not None and packed.status == "included", path
        assert packed.text == expected, path
        assert packed.text.count("[REDACTED:") == len(found) and packed.redactions, path
    for path, text in bait().items():  # the look-alikes: byte for byte
        packed = pack.file(path)
        assert packed is not None and packed.text == text and packed.redactions == (), path


def test_the_same_repository_packs_to_the_same_bytes(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo, _ = leaky_repo(make_repo)
    first = run("pack", str(repo), "--no-cache", "--style", "markdown")
    second = run("pack", str(repo), "--style", "markdown")  # through the cache this time
    third = run("pack", str(repo), "--style", "markdown")
    assert first == second == third
    assert placeholder("password") in first


def test_a_token_in_a_name_is_redacted_wherever_the_name_is_shown(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo({"app.py": "x = 1\n", **NAMED}, name="names")
    pack = wholerepo.pack(repo, cache=False, style="plain")
    shown = {f.path: f for f in pack.files}
    assert set(shown) == {
        "app.py",
        "keys/" + placeholder("github-token") + ".txt",
        "cache/" + placeholder("aws-access-key") + "/settings.py",
    }
    assert all(f.reason == "secret" for p, f in shown.items() if p != "app.py")
    everything = pack.text + json.dumps(pack.manifest()) + json.dumps(summarize(pack))
    assert TOKEN_IN_FILE_NAME not in everything and TOKEN_IN_DIR_NAME not in everything
    # With redaction off the names are shown as they are (and the files still skipped).
    raw = wholerepo.pack(repo, cache=False, redact=False)
    assert f"keys/{TOKEN_IN_FILE_NAME}.txt" in {f.path for f in raw.files if f.reason == "secret"}


def test_a_diff_shows_a_name_holding_a_token_redacted(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": "x = 1\n"}, name="diffnames")
    git(repo, "tag", "before")
    for path, text in NAMED.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "names", "--no-gpg-sign")
    diff = git(repo, "diff", "before", "HEAD")
    assert TOKEN_IN_FILE_NAME in diff and TOKEN_IN_DIR_NAME in diff  # the check below can fail
    redacted, kinds = Redactor().redact_diff(diff)
    assert TOKEN_IN_FILE_NAME not in redacted and TOKEN_IN_DIR_NAME not in redacted
    assert f"+++ b/keys/{placeholder('github-token')}.txt" in redacted
    assert "github-token" in kinds and "aws-access-key" in kinds
    assert redacted.count("\n") == diff.count("\n")
    assert Redactor().redact_diff(redacted) == (redacted, ())
