"""Placements: each secret shape in the syntaxes real repositories write it in, and each
look-alike under the names and in the places where a naive scanner would take it for one.

Values are generated (see test_redact.py); the matrices are what issue 11's adversarial pass did
by hand, made systematic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import uuid

import pytest

from test_redact import ALNUM, B64, DIGITS, LOWER, rand
from test_redact_corpus import password
from test_redact_rules import RULE_SAMPLES
from wholerepo.redact import Redactor, placeholder

PASSWORD = password("placements")

# (path, line with {} where the password goes)
PASSWORD_SYNTAXES = {
    "python keyword": ("app/db.py", 'conn = connect(host="db", password="{}")'),
    "python dict": ("app/db.py", 'CONF = {"password": "{}"}'),
    "python constant": ("app/db.py", 'DB_PASSWORD = "{}"'),
    "yaml": ("deploy/app.yaml", "password: {}"),
    "yaml quoted": ("deploy/app.yaml", 'db_password: "{}"'),
    "json": ("config/app.json", '{"db": {"password": "{}"}}'),
    "toml": ("config/app.toml", 'password = "{}"'),
    "ini": ("setup.cfg", "password = {}"),
    "properties": ("src/main/resources/application.properties", "spring.datasource.password={}"),
    "shell export": ("deploy/env.sh", "export DB_PASSWORD={}"),
    "env file": ("deploy/app.env", "DB_PASSWORD={}"),
    "Dockerfile": ("Dockerfile", "ENV DB_PASSWORD={}"),
    "compose list": ("docker-compose.yml", "    environment:\n      - POSTGRES_PASSWORD={}"),
    "compose map": ("docker-compose.yml", "    environment:\n      POSTGRES_PASSWORD: {}"),
    "kubernetes env": (
        "k8s/deploy.yaml",
        '        env:\n          - name: DB_PASSWORD\n            value: "{}"',
    ),
    "xml element": ("conf/settings.xml", "<password>{}</password>"),
    "xml attribute": ("conf/app.xml", '<datasource user="app" password="{}"/>'),
    "xml add": ("web.config", '<add key="DbPassword" value="{}" />'),
    "xml entry": ("conf/app.xml", '<entry key="db.password">{}</entry>'),
    "ado.net": ("src/Db.cs", 'var cs = "Server=x;Database=y;User Id=sa;Password={};";'),
    "jdbc": ("src/Db.java", 'String url = "jdbc:sqlserver://db:1433;databaseName=shop;user=sa;password={}";'),
    "jdbc query": (
        "src/Db.java",
        'String url = "jdbc:mysql://db:3306/shop?user=app&password={}&useSSL=true";',
    ),
    "php define": ("wp-config.php", "define( 'DB_PASSWORD', '{}' );"),
    "go setenv": ("main.go", 'os.Setenv("DB_PASSWORD", "{}")'),
    "java property": ("App.java", 'System.setProperty("db.password", "{}");'),
    "js object": ("src/db.js", "const db = { user: 'app', password: '{}' };"),
    "node env": ("src/db.js", "process.env.DB_PASSWORD = '{}';"),
    "ruby hash": ("config/db.rb", "config = { password: '{}' }"),
    "ruby rocket": ("config/db.rb", "config = { :password => '{}' }"),
    "command line": ("scripts/backup.sh", "mysqldump -u root --password={} shop > x.sql"),
    "PGPASSWORD": ("scripts/backup.sh", "PGPASSWORD={} psql -h db"),
    "notebook": ("nb/x.ipynb", '    "db = connect(password=\\"{}\\")\\n",'),
    "terraform": ("main.tf", 'administrator_login_password = "{}"'),
    "database url": ("app/x.py", 'DSN = "postgresql://app:{}@db/shop"'),
    "curl": ("scripts/x.sh", "curl -u admin:{} https://h"),
    "sql create": ("db/init.sql", "CREATE USER app WITH PASSWORD '{}';"),
    "sql identified": ("db/init.sql", "ALTER USER 'app'@'%' IDENTIFIED BY '{}';"),
    "ansible": ("ansible/vars.yml", "ansible_become_pass: {}"),
    "redis options": ("src/Cache.cs", 'var c = "redis:6380,password={},ssl=True";'),
    "comment": ("app/db.py", "# prod db password: {} (rotate yearly)"),
    "mysql -p": ("scripts/backup.sh", "mysqldump -u root -p{} shop > x.sql"),
    "mysql -p quoted": ("scripts/backup.sh", "mysql -uroot -p'{}' -e 'select 1'"),
    "sshpass": ("scripts/deploy.sh", "sshpass -p '{}' ssh root@host"),
    "docker login": ("scripts/deploy.sh", "docker login -u ci -p {} registry.corp"),
    "--password value": ("scripts/deploy.sh", "tool --db-password {} --verbose"),
    "powershell": ("scripts/x.ps1", '$p = ConvertTo-SecureString "{}" -AsPlainText -Force'),
    "redis-cli": ("scripts/x.sh", "redis-cli -h cache -a {} ping"),
    "openssl": ("scripts/x.sh", "openssl pkcs12 -export -passout pass:{} -out x.p12"),
    "yaml flow": ("deploy/app.yaml", "db: {user: app, password: {}}"),
    "ansible quoted": ("ansible/host_vars/web.yml", 'ansible_ssh_pass: "{}"'),
    "json pass": ("config/mail.json", '{"auth": {"user": "u", "pass": "{}"}}'),
    "nodemailer": ("src/mail.js", "auth: { user: 'u', pass: '{}' }"),
    "spring default": ("src/Db.java", '@Value("${db.password:{}}")'),
    "shell default": ("deploy/run.sh", 'export DB_PASSWORD="${DB_PASSWORD:-{}}"'),
    "netrc line": ("ci/setup.sh", 'echo "machine db.internal login app password {}" > ~/.netrc'),
    "xml cdata": ("conf/app.xml", "<password><![CDATA[{}]]></password>"),
}


@pytest.mark.parametrize("syntax", sorted(PASSWORD_SYNTAXES))
def test_a_password_goes_in_every_syntax(syntax: str) -> None:
    path, line = PASSWORD_SYNTAXES[syntax]
    text = "import os\n" + line.replace("{}", PASSWORD) + "\nDEBUG = False\n"
    redacted, kinds = Redactor().redact(path, text)
    assert PASSWORD not in redacted
    assert redacted == text.replace(PASSWORD, placeholder(kinds[0])) and len(kinds) == 1


def test_a_password_with_a_hash_sign_goes_whole_from_yaml_and_urls() -> None:
    value = PASSWORD[:5] + "#" + PASSWORD[5:]
    for path, line in (
        ("deploy/app.yaml", "password: {}  # rotated"),
        ("app/x.py", 'U = "redis://:{}@cache:6379"'),
    ):
        redacted, _ = Redactor().redact(path, line.replace("{}", value) + "\n")
        assert value[:5] not in redacted and value[6:] not in redacted, path


TOKEN_PLACES = {
    "python": ("app/settings.py", 'TOKEN = "{}"'),
    "yaml": ("deploy/values.yaml", "token: {}"),
    "json": ("config/app.json", '{"service": {"credentials": "{}"}}'),
    "shell": ("deploy/env.sh", "export SERVICE_CREDENTIAL={}"),
    "Dockerfile": ("Dockerfile", "ENV SERVICE_CREDENTIAL={}"),
    "command line": ("scripts/run.sh", "tool --auth {} --verbose"),
    "documentation": ("docs/setup.md", "Use `{}` as the token."),
    "notebook": ("nb/a.ipynb", '    "client = Client(\\"{}\\")\\n",'),
    "url": ("app/u.py", 'u = "https://h.example.com/p?x=1&auth_token={}"'),
    "xml": ("conf/app.xml", "<apiToken>{}</apiToken>"),
    "comment": ("app/x.go", "// old key {} rotated"),
    "tsv": ("data/keys.tsv", "svc\t{}\tprod"),
    "template literal": ("web/app.ts", "const k = `{}`;"),
}
CONTEXT_FREE = sorted(rule for rule, (_, line) in RULE_SAMPLES.items() if line is None)


@pytest.mark.parametrize("place", sorted(TOKEN_PLACES))
def test_every_token_format_goes_wherever_it_is_written(place: str) -> None:
    path, line = TOKEN_PLACES[place]
    redactor = Redactor()
    left = []
    for rule in CONTEXT_FREE:
        value = RULE_SAMPLES[rule][0]
        redacted, _ = redactor.redact(path, "x = 1\n" + line.replace("{}", value) + "\ny = 2\n")
        if value in redacted:
            left.append(rule)
    assert left == []


def _look_alikes() -> dict[str, str]:
    rng = random.Random(7)
    next_token = base64.b64encode(json.dumps({"offset": 100, "v": 1, "ts": 1700000000}).encode()).decode()
    return {
        "git sha": hashlib.sha1(b"x").hexdigest(),
        "sha256": hashlib.sha256(b"x").hexdigest(),
        "sha512": hashlib.sha512(b"x").hexdigest(),
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "image digest": "sha256:" + hashlib.sha256(b"y").hexdigest(),
        "sri sha384": "sha384-" + base64.b64encode(hashlib.sha384(b"x").digest()).decode(),
        "sri sha512": "sha512-" + base64.b64encode(hashlib.sha512(b"x").digest()).decode(),
        "base64 fixture": base64.b64encode(bytes(rng.getrandbits(8) for _ in range(96))).decode(),
        "base64url digest": base64.urlsafe_b64encode(hashlib.sha256(b"z").digest()).decode().rstrip("="),
        "colour": "#1f2937",
        "colour upper": "#AABBCC",
        "aws example id": "AKIAIOSFODNN7EXAMPLE",
        "aws example secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "next token": next_token.rstrip("="),
        "page token": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA0aHV0a3QSAggB",
        "long identifier": "AbstractSingletonProxyFactoryBeanDefinitionRegistryPostProcessor",
        "long snake": "test_redaction_keeps_line_count_and_is_idempotent_on_every_kind",
        "semver": "1.2.3-rc.4+build.5678",
    }


LOOK_ALIKE_NAMES = [
    "commit",
    "sha",
    "digest",
    "checksum",
    "request_id",
    "etag",
    "integrity",
    "fixture",
    "image",
    "color",
    "next_token",
    "page_token",
    "NextToken",
    "nextPageToken",
    "cursor",
    "cache_key",
    "idempotency_key",
    "primary_key",
    "object_key",
    "partition_key",
    "csrf_token",
    "token_hash",
    "token_id",
    "secret_name",
    "key_id",
    "public_key_fingerprint",
    "nonce",
]
LOOK_ALIKE_PLACES = (
    ("app/x.py", '{n} = "{v}"'),
    ("deploy/x.yaml", "{n}: {v}"),
    ("config/x.json", '{"{n}": "{v}"}'),
    ("app/u.py", 'u = "https://h/x?{n}={v}&a=1"'),
    ("conf/x.xml", "<{n}>{v}</{n}>"),
    ("web/x.html", '<div data-{n}="{v}"></div>'),
    ("docs/x.md", "`{n}`: `{v}`"),
    ("deploy/x.env.sh", "export {N}={v}"),
)


def test_look_alikes_survive_under_every_name_and_in_every_place() -> None:
    redactor = Redactor()
    changed = []
    for label, value in _look_alikes().items():
        for name in LOOK_ALIKE_NAMES:
            for path, line in LOOK_ALIKE_PLACES:
                constant = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()  # NextToken: NEXT_TOKEN
                body = line.replace("{n}", name).replace("{N}", constant).replace("{v}", value)
                text = "a = 1\n" + body + "\nb = 2\n"
                if redactor.redact(path, text)[0] != text:
                    changed.append((label, name, path))
    assert changed == []


@pytest.mark.parametrize("alphabet", ["lower case and digits", "letters and digits"])
def test_random_keys_go_whatever_their_alphabet(alphabet: str) -> None:
    """Every run of three letters once counted as a word: three in five random keys of lower
    case and digits were kept as "wordy" (``atf5h6oq1xodg666kisdenad1bedac8v``)."""
    chars = LOWER + DIGITS if alphabet == "lower case and digits" else ALNUM
    redactor = Redactor()
    left = []
    for i in range(200):
        value = rand(f"alphabet-{alphabet}-{i}", chars, 40)
        if value in redactor.redact("app/settings.py", f'API_KEY = "{value}"\n')[0]:
            left.append(value)
    assert left == []


TYPED_DECLARATIONS = {
    "rust": ("src/main.rs", 'const API_TOKEN: &str = "{}";'),
    "rust static": ("src/main.rs", 'static API_TOKEN: &\'static str = "{}";'),
    "typescript": ("web/app.ts", 'const apiKey: string = "{}";'),
    "typescript field": ("web/app.ts", 'private readonly clientSecret: string = "{}";'),
    "python annotation": ("app/settings.py", 'API_KEY: Final[str] = "{}"'),
    "python default": ("app/client.py", 'def connect(token: str = "{}") -> None:'),
    "kotlin": ("app/src/Keys.kt", 'val apiSecret: String = "{}"'),
    "swift": ("App/Keys.swift", 'let clientSecret: String = "{}"'),
    "go": ("main.go", 'var apiKey string = "{}"'),
}


@pytest.mark.parametrize("language", sorted(TYPED_DECLARATIONS))
def test_a_declared_type_does_not_hide_the_value(language: str) -> None:
    path, line = TYPED_DECLARATIONS[language]
    value = rand("typed-" + language, ALNUM, 40)
    redacted, kinds = Redactor().redact(path, "x = 1\n" + line.replace("{}", value) + "\n")
    assert value not in redacted
    assert redacted == "x = 1\n" + line.replace("{}", placeholder(kinds[0])) + "\n"


def test_a_typed_password_goes_and_a_type_alone_stays() -> None:
    text = 'DB_PASSWORD: str = "{}"\npassword: string;\nconst token: string = getToken();\n'
    redacted, _ = Redactor().redact("app/db.ts", text.replace("{}", PASSWORD))
    assert redacted == text.replace("{}", placeholder("password"))


def test_a_key_of_punctuation_goes() -> None:
    """Django's generated SECRET_KEY has no run of 16 token characters, which gated the line."""
    rng = random.Random("django")
    # Django's alphabet, with a symbol at least every sixth character as in most of its keys.
    value = "".join(rand(f"django-{i}", LOWER + DIGITS, 5) + rng.choice("!@#$%^&*(=+)") for i in range(9))
    for line in (f"SECRET_KEY = 'django-insecure-{value}'", f'SECRET_KEY = "{value}"'):
        redacted, _ = Redactor().redact("mysite/settings.py", line + "\n")
        assert value not in redacted and redacted.startswith("SECRET_KEY = "), line


@pytest.mark.parametrize(
    "path", ["deploy/app.env.example", "deploy/prod.env", "config/app.yaml.j2", "conf/app.ini.dist", ".envrc"]
)
def test_configuration_templates_are_read_as_configuration(path: str) -> None:
    """``name = value`` lines without quotes: a template's suffix hid that the file is configuration."""
    value = rand("template-" + path, B64, 43) + "="
    redacted, _ = Redactor().redact(path, f"ENCRYPTION_KEY={value}\nDEBUG=false\n")
    assert redacted == "ENCRYPTION_KEY=[REDACTED:high-entropy]\nDEBUG=false\n"


HEADERS = {
    "curl custom": ("scripts/call.sh", "curl -H 'X-Auth-Token: {}' https://api.internal"),
    "gitlab": ("scripts/call.sh", 'curl --header "Private-Token: {}" https://gitlab.internal/api/v4'),
    "github": ("scripts/call.sh", 'curl -H "Authorization: token {}" https://api.github.com'),
    "azure": ("scripts/call.sh", "curl -H 'api-key: {}' https://x.openai.azure.com"),
    "http file": ("api/requests.http", "GET https://api.internal/v1\nX-API-Key: {}"),
}


@pytest.mark.parametrize("client", sorted(HEADERS))
def test_a_header_written_out_loses_its_value(client: str) -> None:
    path, line = HEADERS[client]
    value = rand("header-" + client, ALNUM, 40)
    text = line.replace("{}", value) + "\n"
    redacted, kinds = Redactor().redact(path, text)
    assert redacted == text.replace(value, placeholder("high-entropy")) and kinds == ("high-entropy",)


def test_command_lines_and_headers_that_hold_no_secret_stay() -> None:
    value = rand("header-kept", ALNUM, 40)
    text = "\n".join(
        (
            "mysql -u root -p shop < dump.sql",  # -p with a space: mysql asks; shop is the database
            "tool --password-stdin < pw.txt",
            "tool --password $DB_PASSWORD",
            'subprocess.run(["login", "-p", password])',
            f"curl -H 'X-CSRF-Token: {value}' http://h",
            f"curl -H 'X-Request-Id: {value}' http://h",
            "    :type passphrase: :py:data:`bytes`",
            "  password: string;",
            "  password: newPassword1,",
        )
    )
    assert Redactor().redact("scripts/run.sh", text + "\n")[0] == text + "\n"
    assert Redactor().redact("src/app.ts", text + "\n")[0] == text + "\n"


ENV_DEFAULTS = {
    "node": ("src/x.js", "const token = process.env.API_TOKEN || '{}';"),
    "vite": ("src/x.ts", "const key = import.meta.env.VITE_API_KEY ?? '{}';"),
    "ruby": ("config/x.rb", 'TOKEN = ENV["API_TOKEN"] || "{}"'),
    "python": ("app/x.py", 'TOKEN = os.environ.get("API_TOKEN") or "{}"'),
    "compose": ("docker-compose.yml", "      API_TOKEN: ${API_TOKEN:-{}}"),
    "option": ("scripts/x.sh", "deployctl release --api-key {} --env prod"),
    "option =": ("scripts/x.sh", "deployctl notify --token={}"),
    "build arg": ("scripts/x.sh", "docker build --build-arg API_KEY={} ."),
    "kubectl literal": ("scripts/x.sh", "kubectl create secret generic x --from-literal=api-key={}"),
    "heroku": ("scripts/x.sh", "heroku config:set SECRET_KEY={}"),
}


@pytest.mark.parametrize("place", sorted(ENV_DEFAULTS))
def test_a_secret_given_as_a_default_or_an_option_goes(place: str) -> None:
    path, line = ENV_DEFAULTS[place]
    value = rand("default-" + place, ALNUM, 40)
    text = line.replace("{}", value) + "\n"
    redacted, kinds = Redactor().redact(path, text)
    assert redacted == text.replace(value, placeholder("high-entropy")) and kinds == ("high-entropy",)


def test_defaults_and_options_that_are_not_secrets_stay() -> None:
    text = "\n".join(
        (
            'IMAGE="${IMAGE:-nginx:1.25-alpine}"',
            "KEY_FILE=${SECRET_KEY_FILE:-/run/secrets/key}",
            "echo ${TOKEN:-}",
            'const port = process.env.PORT || "8080";',
            "tool --token-file /run/secrets/t --next-token eyJvZmZzZXQiOjEwMH0",
            "gcloud secrets versions access latest --secret=db-password-prod",
            "    pass",
            'bypass = "NorthEast12"',
            "make build CACHE_KEY=build-cache-v2-linux",
            "tool --sort-key=name_and_date_2 --public-key=AAAAC3NzaC1lZDI1NTE5AAAAIGb8x",
            "f(token=tok, secret_key=settings.SECRET_KEY)",
        )
    )
    assert Redactor().redact("scripts/run.sh", text + "\n")[0] == text + "\n"
