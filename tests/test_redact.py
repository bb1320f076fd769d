"""Secret redaction: seeded fake secrets of 30+ kinds leave the pack, bait and code stay.

Every secret here is generated at import time from a fixed seed (random, but the right shape),
and assembled by concatenation, so no file in this repository holds a credential-shaped literal.
The false-positive bait lives in tests/data/secrets/ and is packed byte for byte.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wholerepo
from conftest import MakeRepo, git
from wholerepo.cli import main
from wholerepo.redact import Redactor, placeholder
from wholerepo.tokens import get_tokenizer

DATA = Path(__file__).parent / "data" / "secrets"
UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


def rand(seed: str, chars: str, n: int) -> str:
    """Random but deterministic per seed; always holds a digit and a letter when both can occur."""
    rng = random.Random(seed)
    while True:
        value = "".join(rng.choice(chars) for _ in range(n))
        digits = set(chars) & set(DIGITS)
        letters = set(chars) - set(DIGITS)
        if (not digits or set(value) & digits) and (not letters or set(value) & letters):
            return value


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "1234567890", "name": "Ada", "iat": 1716239022}).encode())
    return header + "." + payload + "." + rand("jwt-sig", B64URL, 43)


def make_pem_body() -> list[str]:
    body = "MII" + rand("pem", B64, 1213)
    return [body[i : i + 64] for i in range(0, len(body), 64)]


@dataclass(frozen=True)
class Seed:
    """One fake secret: the file line(s) holding it, the value, and the kind it must be found as."""

    kind: str
    value: str
    line: str  # with {} where the value goes

    def render(self) -> str:
        return self.line.replace("{}", self.value)


AWS_ID = "AK" + "IA" + rand("aws-id", UPPER + DIGITS, 16)
DISCORD_ID = base64.b64encode(b"912345678901234567").decode().rstrip("=")

SEEDS: tuple[Seed, ...] = (
    Seed("aws-access-key", AWS_ID, 'AWS_ACCESS_KEY_ID = "{}"'),
    Seed("aws-secret-key", rand("aws-secret", B64, 40), 'aws_secret_access_key = "{}"'),
    Seed("github-token", "gh" + "p_" + rand("ghp", ALNUM, 36), 'GITHUB_TOKEN = "{}"'),
    Seed("github-token", "gh" + "o_" + rand("gho", ALNUM, 36), "oauth = {'token': '{}'}"),
    Seed(
        "github-token",
        "github" + "_pat_" + rand("pat1", ALNUM, 22) + "_" + rand("pat2", ALNUM, 59),
        "export GH_PAT={}",
    ),
    Seed("gitlab-token", "gl" + "pat-" + rand("glpat", ALNUM + "_-", 20), 'gitlab_client(private="{}")'),
    Seed(
        "slack-token",
        "xo"
        + "xb-"
        + rand("slack1", DIGITS, 12)
        + "-"
        + rand("slack2", DIGITS, 13)
        + "-"
        + rand("slack3", ALNUM, 24),
        'SLACK_BOT = "{}"',
    ),
    Seed(
        "slack-webhook",
        "T"
        + rand("wh1", UPPER + DIGITS, 8)
        + "/B"
        + rand("wh2", UPPER + DIGITS, 8)
        + "/"
        + rand("wh3", ALNUM, 24),
        'hook = "https://hooks.slack.com/services/{}"',
    ),
    Seed("stripe-key", "sk" + "_live_" + rand("stripe", ALNUM, 99), 'stripe.api_key = "{}"'),
    Seed("stripe-key", "rk" + "_live_" + rand("stripe-rk", ALNUM, 24), "restricted: {}"),
    Seed("twilio-key", "S" + "K" + rand("twilio-sk", HEX, 32), 'TWILIO_API_KEY_SID = "{}"'),
    Seed("twilio-key", "A" + "C" + rand("twilio-ac", HEX, 32), "client = Client('{}', auth)"),
    Seed(
        "openai-key",
        "sk-" + "proj-" + rand("openai", ALNUM + "-_", 124) + "T3" + "BlbkFJ" + rand("openai2", ALNUM, 20),
        'OPENAI_API_KEY = "{}"',
    ),
    Seed(
        "openai-key",
        "sk-" + rand("openai-old1", ALNUM, 20) + "T3" + "BlbkFJ" + rand("openai-old2", ALNUM, 20),
        "openai.api_key = '{}'",
    ),
    Seed("deepseek-key", "sk-" + rand("deepseek", HEX, 32), 'client = OpenAI(api_key="{}", base_url=URL)'),
    Seed(
        "anthropic-key",
        "sk-" + "ant-api03-" + rand("anthropic", ALNUM + "-_", 93) + "AA",
        'headers["x-api-key"] = "{}"',
    ),
    Seed("jwt", make_jwt(), 'SESSION = "{}"'),
    Seed("google-api-key", "AI" + "za" + rand("google", ALNUM + "-_", 35), "maps_key: {}"),
    Seed(
        "gcp-client-secret", "GOC" + "SPX-" + rand("gcp-client", ALNUM + "-_", 28), '"client_secret": "{}",'
    ),
    Seed(
        "azure-storage-key",
        rand("azure", B64, 86) + "==",
        'conn = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={};EndpointSuffix=core.net"',
    ),
    Seed(
        "sendgrid-key",
        "S" + "G." + rand("sg1", ALNUM + "-_", 22) + "." + rand("sg2", ALNUM + "-_", 43),
        "SENDGRID_API_KEY={}",
    ),
    Seed("mailgun-key", "ke" + "y-" + rand("mailgun", HEX, 32), 'mailgun = ("api", "{}")'),
    Seed("mailchimp-key", rand("mailchimp", HEX, 32) + "-us" + "14", "MC = '{}'"),
    Seed("heroku-key", "HR" + "KU-AA" + rand("heroku", ALNUM + "-_", 58), "heroku_token: {}"),
    Seed(
        "heroku-key",
        "-".join(rand("heroku-uuid" + str(n), HEX, n) for n in (8, 4, 4, 4, 12)),
        'HEROKU_API_KEY = "{}"',
    ),
    Seed(
        "discord-token",
        DISCORD_ID + "." + rand("discord1", ALNUM, 6) + "." + rand("discord2", ALNUM, 27),
        "bot.run('{}')",
    ),
    Seed(
        "telegram-token",
        rand("tg1", DIGITS, 10) + ":" + "AA" + rand("tg2", ALNUM, 33),
        'TELEGRAM_URL = f"https://api.telegram.org/bot{}/sendMessage"',
    ),
    Seed("vault-token", "hv" + "s." + rand("vault", ALNUM, 90), 'VAULT_TOKEN="{}"'),
    Seed("shopify-token", "shp" + "at_" + rand("shopify", HEX, 32), "X-Shopify-Access-Token: {}"),
    Seed(
        "pypi-token",
        "py" + "pi-AgEIcHlwaS5vcmc" + rand("pypi", ALNUM + "-_", 120),
        "password = {}",
    ),
    Seed("npm-token", "np" + "m_" + rand("npm", ALNUM, 36), "//registry.npmjs.org/:_authToken={}"),
    Seed("square-secret", "sq0" + "csp-" + rand("square", ALNUM + "-_", 43), 'SQUARE = "{}"'),
    Seed(
        "db-password",
        rand("dbpw", ALNUM, 14) + "!",
        'DATABASE_URL = "postgresql://app_user:{}@db.internal:5432/app"',
    ),
    Seed("db-password", rand("redis", ALNUM, 20), "cache = redis.from_url('redis://:{}@cache:6379/0')"),
    Seed("url-password", rand("ftp", ALNUM, 12), "MIRROR = 'ftp://mirror:{}@ftp.example.org/pub'"),
    Seed("high-entropy", rand("entropy", ALNUM, 40), 'webhook_signing_secret = "{}"'),
    Seed("high-entropy", rand("entropy-hex", HEX, 64), "session_key = '{}'"),
    Seed("password", "Tr0ub4dor&3-" + rand("pw", LOWER, 5), 'SMTP_PASSWORD = "{}"'),
    Seed("bearer-token", rand("bearer", ALNUM + "-_", 48), 'headers = {"Authorization": "Bearer {}"}'),
    Seed("azure-sas-token", rand("sas", ALNUM + "%", 52), "url = base + '?sv=2022-11-02&ss=b&srt=co&sig={}'"),
)

PEM_LINES = make_pem_body()
PEM_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_LINES) + "\n-----END RSA PRIVATE KEY-----\n"

GCP_KEY = (
    "-----BEGIN PRIVATE KEY-----\\n" + "\\n".join(make_pem_body()[:10]) + "\\n-----END PRIVATE KEY-----\\n"
)
GCP_JSON = (
    json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": rand("gcp-kid", HEX, 40),
            "client_email": "deploy@acme-prod.iam.gserviceaccount.com",
        },
        indent=2,
    )[:-2]
    + ',\n  "private_key": "'
    + GCP_KEY
    + '"\n}\n'
)

KINDS = {s.kind for s in SEEDS} | {"private-key", "gcp-private-key"}


def source_for(seed: Seed) -> str:
    """A small module with the secret on line 4, between code that must survive."""
    return (
        '"""Settings."""\n'
        "import os\n"
        "# BEFORE-MARKER\n"
        f"{seed.render()}\n"
        "# AFTER-MARKER\n"
        'DEBUG = os.environ.get("DEBUG", "0") == "1"\n'
    )


def test_at_least_twenty_kinds_are_seeded() -> None:
    assert len(KINDS) >= 30
    assert {"aws-access-key", "github-token", "gitlab-token", "slack-token", "stripe-key"} <= KINDS
    assert {"twilio-key", "openai-key", "deepseek-key", "jwt", "private-key", "gcp-private-key"} <= KINDS
    assert {"azure-storage-key", "db-password", "google-api-key"} <= KINDS


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.kind + ":" + s.value[:6])
def test_each_kind_is_found_and_only_its_value_replaced(seed: Seed) -> None:
    text = source_for(seed)
    redacted, kinds = Redactor().redact("app/settings.py", text)
    assert kinds == (seed.kind,), kinds
    assert redacted == text.replace(seed.value, placeholder(seed.kind))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.kind + ":" + s.value[:6])
def test_redaction_is_idempotent_on_every_kind(seed: Seed) -> None:
    redactor = Redactor()
    once, _ = redactor.redact("settings.py", source_for(seed))
    assert redactor.redact("settings.py", once) == (once, ())


def test_pem_block_body_is_replaced_line_by_line() -> None:
    text = 'KEY = """\n' + PEM_BLOCK + '"""\nprint(KEY)\n'
    redacted, kinds = Redactor().redact("deploy/keys.py", text)
    assert kinds == ("private-key",)
    lines = redacted.splitlines()
    assert len(lines) == len(text.splitlines())
    assert lines[1] == "-----BEGIN RSA PRIVATE KEY-----"
    assert lines[2 : 2 + len(PEM_LINES)] == [placeholder("private-key")] * len(PEM_LINES)
    assert lines[2 + len(PEM_LINES)] == "-----END RSA PRIVATE KEY-----"
    assert lines[-1] == "print(KEY)"


def test_pem_in_concatenated_string_literals_keeps_the_quotes_and_escapes() -> None:
    text = (
        "KEY = (\n"
        '    "-----BEGIN EC PRIVATE KEY-----\\n"\n'
        + "".join(f'    "{line}\\n"\n' for line in PEM_LINES[:4])
        + '    "-----END EC PRIVATE KEY-----\\n"\n'
        ")\n"
    )
    redacted, kinds = Redactor().redact("keys.py", text)
    assert kinds == ("private-key",)
    assert redacted.count(f'    "{placeholder("private-key")}\\n"\n') == 4
    assert redacted.count("\n") == text.count("\n")
    assert not any(line in redacted for line in PEM_LINES[:4])


def test_gcp_service_account_json_stays_valid_json() -> None:
    redacted, kinds = Redactor().redact("deploy/gcp-sa.json", GCP_JSON)
    assert kinds == ("gcp-private-key",)
    doc = json.loads(redacted)
    assert doc["private_key"] == (
        "-----BEGIN PRIVATE KEY-----\n" + placeholder("gcp-private-key") + "\n-----END PRIVATE KEY-----\n"
    )
    assert doc["project_id"] == "acme-prod" and doc["client_email"].startswith("deploy@")
    assert redacted.count("\n") == GCP_JSON.count("\n")


def test_pem_parsing_code_and_documentation_stubs_are_not_key_material() -> None:
    code = (
        'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n'
        "    inside = True\n"
        'elif line.startswith("-----END RSA PRIVATE KEY-----"):\n'
        "    inside = False\n"
    )
    doc = "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"
    redactor = Redactor()
    assert redactor.redact("pem.py", code) == (code, ())
    assert redactor.redact("README.md", doc) == (doc, ())


def test_database_url_keeps_scheme_user_and_host() -> None:
    password = rand("db-only", ALNUM, 18)
    text = f'engine = create_engine("mysql+pymysql://report:{password}@10.0.0.7:3306/sales")\n'
    redacted, kinds = Redactor().redact("db.py", text)
    assert kinds == ("db-password",)
    assert redacted == (
        f'engine = create_engine("mysql+pymysql://report:{placeholder("db-password")}@10.0.0.7:3306/sales")\n'
    )


def test_short_passwords_are_kept_in_tests_and_docs_but_not_in_code() -> None:
    text = 'user = User(name="ada", password="hunter22")\n'
    redactor = Redactor()
    assert redactor.redact("tests/test_login.py", text) == (text, ())
    assert redactor.redact("docs/auth.md", text) == (text, ())
    redacted, kinds = redactor.redact("app/seed.py", text)
    assert kinds == ("password",) and "hunter22" not in redacted


def test_a_token_format_is_redacted_in_tests_too() -> None:
    seed = SEEDS[0]
    redacted, kinds = Redactor().redact("tests/test_aws.py", source_for(seed))
    assert kinds == ("aws-access-key",) and seed.value not in redacted


def test_crlf_and_non_ascii_text_keep_their_bytes_around_the_secret() -> None:
    seed = SEEDS[2]
    text = "# café ☕ 数据\r\n" + seed.render() + "  # ünïcode\r\nx = 1\r\n"
    redacted, kinds = Redactor().redact("app.py", text)
    assert kinds == (seed.kind,)
    assert redacted == text.replace(seed.value, placeholder(seed.kind))


def bait_files() -> dict[str, str]:
    """The bait fixtures, under the names they get in the packed repository."""
    names = json.loads((DATA / "bait-names.json").read_text(encoding="utf-8"))
    return {target: (DATA / source).read_text(encoding="utf-8") for source, target in names.items()}


def test_bait_survives_the_redactor_byte_for_byte() -> None:
    redactor = Redactor()
    files = bait_files()
    assert len(files) >= 4
    for path, text in files.items():
        assert redactor.redact(path, text) == (text, ()), path


def test_pack_redacts_every_seeded_secret_and_keeps_the_rest(make_repo: MakeRepo) -> None:
    files: dict[str, str] = {f"conf/s{i:02d}.py": source_for(seed) for i, seed in enumerate(SEEDS)}
    files["conf/keys.py"] = 'KEY = """\n' + PEM_BLOCK + '"""\nprint("AFTER-MARKER")\n'
    files["deploy/gcp-sa.json"] = GCP_JSON
    files.update(bait_files())
    repo = make_repo(files)
    pack = wholerepo.pack(repo, cache=False)

    for value in [s.value for s in SEEDS] + PEM_LINES:
        assert value not in pack.text
    for i, seed in enumerate(SEEDS):
        path = f"conf/s{i:02d}.py"
        packed = pack.file(path)
        assert packed is not None and packed.status == "included", path
        expected = files[path].replace(seed.value, placeholder(seed.kind))
        assert packed.text == expected, path
        assert packed.redactions == (seed.kind,), path
        assert packed.lines == 6
        assert packed.text.splitlines().index("# AFTER-MARKER") == 4
    keys = pack.file("conf/keys.py")
    assert keys is not None and keys.text is not None and keys.redactions == ("private-key",)
    assert keys.text.splitlines()[-1] == 'print("AFTER-MARKER")'
    assert keys.lines == files["conf/keys.py"].count("\n")
    for path, text in bait_files().items():
        bait = pack.file(path)
        assert bait is not None and bait.text == text and bait.redactions == (), path

    manifest = pack.manifest()
    assert manifest["redactions"] == len(SEEDS) + 2
    entries = {e["path"]: e for e in manifest["files"]}
    assert entries["deploy/gcp-sa.json"]["redactions"] == 1
    assert entries["deploy/gcp-sa.json"]["redacted_kinds"] == ["gcp-private-key"]
    assert entries["conf/s00.py"]["redacted_kinds"] == ["aws-access-key"]
    assert all("redactions" not in e for p, e in entries.items() if p in bait_files())
    # What is sent is what is counted.
    assert pack.prompt_tokens == get_tokenizer("deepseek-v4").count(pack.text)


@pytest.mark.parametrize("style", ["xml", "markdown", "plain", "json"])
def test_every_style_sends_the_redacted_text(make_repo: MakeRepo, style: str) -> None:
    seed = SEEDS[4]
    repo = make_repo({"settings.py": source_for(seed)})
    pack = wholerepo.pack(repo, style=style, cache=False)
    assert seed.value not in pack.text
    assert placeholder(seed.kind) in pack.text
    assert pack.prompt_tokens == get_tokenizer("deepseek-v4").count(pack.text)


def test_no_redact_keeps_secrets_and_counts_them_exactly(make_repo: MakeRepo) -> None:
    seed = SEEDS[2]
    repo = make_repo({"settings.py": source_for(seed)})
    pack = wholerepo.pack(repo, redact=False, cache=False)
    assert seed.value in pack.text and "[REDACTED:" not in pack.text
    assert pack.manifest()["redactions"] == 0
    assert pack.prompt_tokens == get_tokenizer("deepseek-v4").count(pack.text)


def test_secret_files_are_skipped_whole(make_repo: MakeRepo) -> None:
    token = "gh" + "p_" + rand("envfile", ALNUM, 36)
    repo = make_repo(
        {
            ".env": f"GITHUB_TOKEN={token}\n",
            ".env.production": f"GITHUB_TOKEN={token}\n",
            "id_rsa": PEM_BLOCK,
            "certs/server.pem": PEM_BLOCK,
            "release.keystore": "binary-ish\n",
            ".env.example": "GITHUB_TOKEN=your-token-here\n",
            "app.py": "print(1)\n",
        }
    )
    pack = wholerepo.pack(repo, cache=False)
    for path in (".env", ".env.production", "id_rsa", "certs/server.pem", "release.keystore"):
        packed = pack.file(path)
        assert packed is not None and (packed.status, packed.reason) == ("skipped", "secret"), path
    example = pack.file(".env.example")
    assert example is not None and example.status == "included" and example.redactions == ()
    assert token not in pack.text and PEM_LINES[0] not in pack.text


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_summary_reports_redactions_and_no_redact_warns(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": source_for(SEEDS[0]), "b.py": source_for(SEEDS[3]), "c.py": "x = 1\n"})
    code, out, err = run_cli("pack", str(repo), "--no-cache")
    assert code == 0, err
    assert SEEDS[0].value not in out and SEEDS[3].value not in out
    assert "redacted 2 secrets in 2 files: a.py, b.py" in err
    assert "warning" not in err

    manifest = tmp_path / "manifest.json"
    code, out, err = run_cli("pack", str(repo), "--no-redact", "--no-cache", "--manifest", str(manifest))
    assert code == 0, err
    assert SEEDS[0].value in out
    assert "warning: redaction is off (--no-redact)" in err
    assert json.loads(manifest.read_text(encoding="utf-8"))["redactions"] == 0


# --- properties ---------------------------------------------------------------------------------

FRAGMENTS = [s.render() for s in SEEDS] + [
    PEM_BLOCK,
    "-----BEGIN PRIVATE KEY-----\n",
    "-----END PRIVATE KEY-----",
    'password = "',
    "postgres://u:",
    "@host/db",
    "\n",
    "\r\n",
    " = ",
    '"',
    "'",
    "\\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=string.printable + "é☕", max_size=40)),
        max_size=25,
    ),
    st.sampled_from(["app/settings.py", "tests/test_x.py", "deploy.yaml", "README.md"]),
)
def test_redaction_keeps_line_count_and_is_idempotent(parts: list[str], path: str) -> None:
    text = "".join(parts)
    redactor = Redactor()
    once, kinds = redactor.redact(path, text)
    assert once.count("\n") == text.count("\n")
    assert len(once.splitlines()) == len(text.splitlines())
    assert all(placeholder(kind) in once for kind in kinds)
    assert (once == text) == (kinds == ())
    assert redactor.redact(path, once) == (once, ())


def test_diff_redaction_keeps_every_prefix_and_catches_removed_secrets(make_repo: MakeRepo) -> None:
    """For review --base: the diff is sent too, so its added and removed lines are redacted."""
    old, new = SEEDS[2], SEEDS[0]
    repo = make_repo({"app/settings.py": source_for(old), "keys.py": "x = 1\n"})
    write = {"app/settings.py": source_for(new), "keys.py": 'KEY = """\n' + PEM_BLOCK + '"""\n'}
    for path, text in write.items():
        (repo / path).write_text(text, encoding="utf-8")
    diff = git(repo, "diff", "HEAD")
    redacted, kinds = Redactor().redact_diff(diff)
    assert sorted(kinds) == sorted([old.kind, new.kind, "private-key"])
    assert old.value not in redacted and new.value not in redacted
    assert not any(line in redacted for line in PEM_LINES)
    before, after = diff.split("\n"), redacted.split("\n")
    assert len(before) == len(after)
    assert [line[:1] for line in before] == [line[:1] for line in after]
    assert f"-{old.line.replace('{}', placeholder(old.kind))}" in after
    assert f"+{new.line.replace('{}', placeholder(new.kind))}" in after
    assert Redactor().redact_diff(redacted) == (redacted, ())
