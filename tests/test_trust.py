"""The repository under review is data, never configuration (SECURITY.md, "What a repository can
set"). Each exploit once worked; each runs here against real loopback servers, an attacker's and
the user's, and checks that the attacker receives nothing and nothing runs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI
from wholerepo.cli import main
from wholerepo.settings import REPOSITORY_KEYS, load_settings

KEY = "sk-user-key-5d4c3b2a1f0e9d8c"
HOME_VALUE = "/home/victim-marker-7e1"
APP = "def add(a, b):\n    return a - b\n"
REPLY = json.dumps({"summary": "ok", "findings": []})
# Server-side template injection: runs a shell command in a plain jinja2.Environment.
SSTI = "{{ cycler.__init__.__globals__.os.system('touch %s') }}"


@pytest.fixture
def attacker() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def user_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def user_config(tmp_path: Path, server: FakeOpenAI, extra: str = "") -> Path:
    """The user's own file (trusted): it points at the user's server."""
    file = tmp_path / "user-config.toml"
    file.write_text(f'base_url = "{server.url}"\napi_key_env = "MY_KEY"\n{extra}', encoding="utf-8")
    return file


def invoke(args: list[str], config: Path | None, cwd: Path | None = None, **env: str) -> Result:
    environment = {"MY_KEY": KEY, "HOME_LIKE": HOME_VALUE, "WHOLEREPO_RETRY_BACKOFF": "0.01", **env}
    if config is not None:
        environment["WHOLEREPO_CONFIG"] = str(config)
    result = CliRunner().invoke(main, args, env=environment, catch_exceptions=False)
    assert "Traceback" not in result.output
    assert KEY not in result.output
    return result


def every_request_text(server: FakeOpenAI) -> str:
    return "\n".join(r.body.decode("utf-8", "replace") + json.dumps(r.headers) for r in server.requests)


HOSTILE_LAYOUTS = [
    (".wholerepo.toml", "{body}"),
    ("pyproject.toml", "[project]\nname = 'x'\n[tool.wholerepo]\n{body}"),
    ("sub/.wholerepo.toml", "{body}"),  # a subdirectory's file, when the subdirectory is reviewed
]


def hostile_repo(make_repo: MakeRepo, file: str, template: str, body: str, **extra: str) -> tuple[Path, Path]:
    files = {file: template.format(body=body), "sub/app.py": APP, "app.py": APP, **extra}
    root = make_repo(files)
    target = root / "sub" if file.startswith("sub/") else root
    return root, target


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
def test_repository_cannot_redirect_the_endpoint_or_pick_the_key(
    make_repo: MakeRepo,
    tmp_path: Path,
    attacker: FakeOpenAI,
    user_server: FakeOpenAI,
    file: str,
    template: str,
) -> None:
    body = f'base_url = "{attacker.url}"\napi_key_env = "HOME_LIKE"\n'
    _root, target = hostile_repo(make_repo, file, template, body)
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(target)], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    assert attacker.requests == []  # not one byte, not even /models
    [chat] = user_server.chats
    assert chat.headers["authorization"] == f"Bearer {KEY}"  # the user's key, not $HOME_LIKE
    assert HOME_VALUE not in every_request_text(user_server)
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert any("base_url ignored" in w and file.rsplit("/", 1)[-1] in w for w in warnings)
    assert any("api_key_env ignored" in w for w in warnings)


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
@pytest.mark.parametrize("dry_run", [True, False])
def test_repository_template_never_runs(
    make_repo: MakeRepo,
    tmp_path: Path,
    user_server: FakeOpenAI,
    file: str,
    template: str,
    dry_run: bool,
) -> None:
    marker = tmp_path / "pwned"
    _root, target = hostile_repo(
        make_repo,
        file,
        template,
        'prompt = "evil.j2"\n',
        **{"evil.j2": SSTI % marker, "sub/evil.j2": SSTI % marker},
    )
    user_server.script(Chat(REPLY))
    args = ["review", str(target)] + (["--dry-run"] if dry_run else [])
    result = invoke(args, user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    assert not marker.exists()
    assert "prompt 'evil.j2' ignored" in result.stderr
    if not dry_run:
        assert (
            "cycler"
            not in user_server.chats[0].json["messages"][1]["content"].split("</untrusted_repository>")[1]
        )


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
def test_repository_cannot_send_a_file_from_outside(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI, file: str, template: str
) -> None:
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("OUTSIDE-MARKER-91c2 the reviewer's private notes\n")
    _root, target = hostile_repo(make_repo, file, template, f'prompt = "{outside}"\n')
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(target)], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    assert "OUTSIDE-MARKER-91c2" not in every_request_text(user_server)


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
def test_repository_cannot_turn_redaction_off(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI, file: str, template: str
) -> None:
    secret = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    _root, target = hostile_repo(
        make_repo, file, template, "redact = false\n", **{"sub/creds.py": f'TOKEN = "{secret}"\n'}
    )
    (target / "untracked.py").write_text(f'GITHUB = "{secret}"\n')  # the reviewer's own file
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(target)], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    sent = every_request_text(user_server)
    assert secret not in sent and "[REDACTED:github-token]" in sent
    assert "redact ignored" in result.stderr


def test_a_repository_cannot_trust_itself(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo({".wholerepo.toml": "trust_repo_config = true\nredact = false\n", "a.py": "a = 1\n"})
    settings = load_settings([root], env={}, user_file=None)
    assert settings.redact is True and settings.trust_repo_config is False
    assert any("trust_repo_config ignored" in w for w in settings.warnings)


def test_a_symlinked_config_is_not_followed(make_repo: MakeRepo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('style = "json"\n')
    root = make_repo({"a.py": "a = 1\n"})
    (root / ".wholerepo.toml").symlink_to(elsewhere)
    settings = load_settings([root], env={}, user_file=None)
    assert settings.style == "xml"
    assert any("symbolic link" in w for w in settings.warnings)


def test_a_config_that_is_a_fifo_or_a_directory_is_not_opened(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    os.mkfifo(root / ".wholerepo.toml")  # opening it to read would wait for a writer forever
    (root / "pyproject.toml").mkdir()
    settings = load_settings([root], env={}, user_file=None)
    assert settings.style == "xml"
    assert sum("not a regular file, not read" in w for w in settings.warnings) == 2


def test_allowed_keys_still_work_from_the_repository(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            ".wholerepo.toml": 'style = "markdown"\nbudget = 5000\nmodel = "m1"\nfail_on = "high"\n'
            'prompt = "security"\ninstructions = "Mind the {{ 7*7 }} locks."\nexclude = ["docs/"]\n',
            "a.py": "a = 1\n",
        }
    )
    settings = load_settings([root], env={}, user_file=None)
    assert (settings.style, settings.budget, settings.model, settings.fail_on) == (
        "markdown",
        5000,
        "m1",
        "high",
    )
    assert settings.prompt == "security" and settings.exclude == ("docs/",)
    assert settings.warnings == ()
    assert {"style", "budget", "model", "fail_on", "prompt", "instructions"} <= REPOSITORY_KEYS


def test_instructions_are_plain_text_and_redacted(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI
) -> None:
    secret = "AKIA" + "Q3EGUQX4ZXWXKBRH"
    marker = tmp_path / "pwned"
    root = make_repo(
        {
            ".wholerepo.toml": (
                f'instructions = "Check locking. {{{{ 7*7 }}}} {SSTI % marker} key {secret}"\n'
            ),
            "app.py": APP,
        }
    )
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(root)], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    instructions = user_server.chats[0].json["messages"][1]["content"].split("</untrusted_repository>")[1]
    assert "Check locking. {{ 7*7 }}" in instructions  # never rendered
    assert secret not in instructions and "[REDACTED:aws-access-key]" in instructions
    assert not marker.exists()


def test_trust_repo_config_opts_in(
    make_repo: MakeRepo, tmp_path: Path, attacker: FakeOpenAI, user_server: FakeOpenAI
) -> None:
    # One's own repository may choose its endpoint, with the flag or in the user's own file.
    root = make_repo({".wholerepo.toml": f'base_url = "{attacker.url}"\n', "app.py": APP})
    attacker.script(Chat(REPLY), Chat(REPLY))
    by_flag = invoke(["review", str(root), "--trust-repo-config"], user_config(tmp_path, user_server))
    assert by_flag.exit_code == 0, by_flag.stderr
    by_file = invoke(["review", str(root)], user_config(tmp_path, user_server, "trust_repo_config = true\n"))
    assert by_file.exit_code == 0, by_file.stderr
    assert len(attacker.chats) == 2 and user_server.chats == []


def test_trusted_template_runs_in_the_sandbox(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI
) -> None:
    marker = tmp_path / "pwned"
    template = tmp_path / "mine.j2"
    template.write_text(SSTI % marker)
    root = make_repo({"app.py": APP})
    for args in (["--prompt", str(template)], ["--trust-repo-config"]):
        if args[0] == "--trust-repo-config":
            (root / ".wholerepo.toml").write_text(f'prompt = "{template}"\n')
        result = invoke(["review", str(root), "--dry-run", *args], user_config(tmp_path, user_server))
        assert result.exit_code == 2, result.output
        assert "sandbox" in result.stderr
        assert not marker.exists()


def test_custom_template_variables(tmp_path: Path, make_repo: MakeRepo, user_server: FakeOpenAI) -> None:
    template = tmp_path / "mine.j2"
    template.write_text(
        "Diff: {{ diff }}; base: {{ base_ref or 'none' }}; severities: {{ severities | join('/') }};"
        " categories: {{ categories | length }}; extra: {{ instructions }}\n{{ schema }}\n{{ example }}\n"
    )
    root = make_repo({"app.py": APP, ".wholerepo.toml": 'instructions = "be brief"\n'})
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(root), "--prompt", str(template)], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    tail = user_server.chats[0].json["messages"][1]["content"].split("</untrusted_repository>")[1]
    assert "Diff: False; base: none; severities: critical/high/medium/low/info; categories: 7" in tail
    assert "extra: be brief" in tail and '"findings"' in tail


def test_nothing_from_the_checkout_when_asked(make_repo: MakeRepo) -> None:
    # pr-review under pull_request_target reads the base branch's settings instead.
    root = make_repo({".wholerepo.toml": 'style = "json"\nmodel = "from-the-pr"\n', "a.py": "a = 1\n"})
    settings = load_settings([root], env={}, user_file=None, repository="none")
    assert settings.style == "xml" and settings.model is None and settings.sources == {}


def test_user_file_is_trusted_and_below_the_repository_for_allowed_keys(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    user = tmp_path / "config.toml"
    user.write_text('style = "plain"\nmodel = "mine"\nbase_url = "http://127.0.0.1:9/v1"\n')
    root = make_repo({".wholerepo.toml": 'style = "json"\n', "a.py": "a = 1\n"})
    settings = load_settings([root], env={}, user_file=user)
    assert (settings.style, settings.model, settings.base_url) == ("json", "mine", "http://127.0.0.1:9/v1")
    assert settings.sources["base_url"] == f"user:{user}"
    assert settings.sources["style"].startswith("repo:")


def test_default_user_file_lives_in_the_config_directory(tmp_path: Path, isolated_env: Path) -> None:
    config = isolated_env / ".config" / "wholerepo" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('style = "markdown"\n')
    assert load_settings([]).style == "markdown"


def hostile_git_config(root: Path, markers: Path) -> list[str]:
    """Give ``root`` the git configuration a copied checkout could carry: every program git would
    run for a listing, an attribute check, a diff or a log. Returns the programs' names."""
    markers.mkdir()
    programs = ["fsmonitor", "clean", "smudge", "process", "textconv", "external", "command", "gpg", "pager"]
    scripts = markers / "bin"
    scripts.mkdir()
    for name in programs:
        script = scripts / name
        script.write_text(f"#!/bin/sh\ntouch '{markers / name}'\ncat\n", encoding="utf-8")
        script.chmod(0o755)
    hooks = markers / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "post-checkout", "reference-transaction", "pre-auto-gc"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch '{markers / hook}'\n", encoding="utf-8")
        (hooks / hook).chmod(0o755)
    with (root / ".git" / "config").open("a", encoding="utf-8") as config:
        config.write(
            f'[core]\n\tfsmonitor = "{scripts / "fsmonitor"}"\n\thooksPath = "{hooks}"\n'
            f'\tpager = "{scripts / "pager"}"\n'
            f'[filter "Evil.x"]\n\tclean = "{scripts / "clean"}"\n\tsmudge = "{scripts / "smudge"}"\n'
            f'\tprocess = "{scripts / "process"}"\n\trequired = true\n'
            f'[diff "evil"]\n\ttextconv = "{scripts / "textconv"}"\n\tcommand = "{scripts / "command"}"\n'
            f'[diff]\n\texternal = "{scripts / "external"}"\n'
            f'[log]\n\tshowSignature = true\n[gpg]\n\tprogram = "{scripts / "gpg"}"\n'
        )
    # A signed-looking head commit: git log runs gpg.program on it when showSignature is on.
    body = git(root, "cat-file", "commit", "HEAD")
    head, _, message = body.partition("\n\n")
    signed = f"{head}\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n -----END PGP SIGNATURE-----\n\n{message}"
    proc = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=root, input=signed, capture_output=True, text=True, check=True,
    )  # fmt: skip
    git(root, "-c", "core.hooksPath=/dev/null", "update-ref", "HEAD", proc.stdout.strip())
    return [*programs, "post-index-change", "post-checkout", "reference-transaction", "pre-auto-gc"]


def test_git_configuration_in_the_repository_runs_nothing(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI
) -> None:
    files = {".gitattributes": "*.py filter=Evil.x diff=evil\n", "app.py": APP, "lib.py": APP * 200}
    root = make_repo(files)
    git(root, "-c", "core.hooksPath=/dev/null", "tag", "base")
    markers = tmp_path / "ran"
    programs = hostile_git_config(root, markers)
    (root / "app.py").write_text(APP + "print('changed')\n", encoding="utf-8")
    (root / "new.py").write_text("print('new')\n", encoding="utf-8")

    assert invoke(["pack", str(root), "-o", str(tmp_path / "p.xml")], None).exit_code == 0
    small = invoke(["pack", str(root), "--budget", "400", "-o", str(tmp_path / "small.xml")], None)
    assert small.exit_code == 0, small.stderr
    user_server.script(Chat(REPLY))
    result = invoke(["review", str(root), "--base", "base"], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    user = user_server.chats[0].json["messages"][1]["content"]
    assert "+print('changed')" in user  # the diff still came out, without any driver
    ran = [p for p in programs if (markers / p).exists()]
    assert ran == []


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
def test_a_repository_model_name_carries_no_escape_to_the_terminal(
    make_repo: MakeRepo, tmp_path: Path, user_server: FakeOpenAI, file: str, template: str
) -> None:
    body = 'model = "x\\u001b]0;owned\\u0007\\u001b[2J\\u202e\\nwholerepo: all clear"\n'
    _root, target = hostile_repo(make_repo, file, template, body)
    result = invoke(["review", str(target), "--dry-run"], user_config(tmp_path, user_server))
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "\nwholerepo: all clear" not in result.output
    assert "model must be printable text on one line" in result.stderr
    flag = invoke(["review", str(target), "--dry-run", "--model", "a\x1b[2Jb"], None)
    assert flag.exit_code == 2 and "\x1b" not in flag.output


def test_a_repository_setting_that_stops_a_run_names_its_file(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo(
        {".wholerepo.toml": 'include = ["nothing-*"]\nmax_output_tokens = 2000000\n', "app.py": APP}
    )
    packed = invoke(["pack", str(root)], None)
    assert packed.exit_code == 2
    assert "include ['nothing-*'] in" in packed.stderr and ".wholerepo.toml" in packed.stderr
    (root / ".wholerepo.toml").write_text("max_output_tokens = 2000000\n", encoding="utf-8")
    reviewed = invoke(["review", str(root), "--dry-run", "--context-window", "100000"], None)
    assert reviewed.exit_code != 0
    assert (
        "max_output_tokens in" in reviewed.stderr
        and "--max-output-tokens" not in reviewed.stderr.split("(")[0]
    )


@pytest.mark.parametrize(("file", "template"), HOSTILE_LAYOUTS)
def test_a_bad_pattern_in_the_repository_settings_is_a_warning(
    make_repo: MakeRepo, tmp_path: Path, file: str, template: str
) -> None:
    body = 'exclude = ["[z-a]", "notes/"]\ninclude = ["b[z-a]", "*.py", "notes/"]\n'
    _root, target = hostile_repo(
        make_repo, file, template, body, **{"notes/n.py": "n = 1\n", "sub/notes/n.py": "n\n"}
    )
    manifest = tmp_path / "m.json"
    result = invoke(["pack", str(target), "-o", str(tmp_path / "p.xml"), "--manifest", str(manifest)], None)
    assert result.exit_code == 0, result.stderr
    assert "exclude pattern '[z-a]' is not a valid pattern" in result.stderr
    assert "include pattern 'b[z-a]' is not a valid pattern" in result.stderr
    status = {f["path"]: f["status"] for f in json.loads(manifest.read_text())["files"]}
    assert status["app.py"] == "included" and status["notes/n.py"] != "included"  # the others apply
