"""The token formats, as data: one row a format, each with where it comes from.

Sources: ``detect-secrets:<Plugin>`` is a regex of Yelp's detect-secrets (Apache-2.0) plugin of
that name; ``gitleaks:<rule-id>`` a rule of gitleaks' default configuration (config/gitleaks.toml,
MIT licence, Copyright (c) 2019 Zachary Rice); ``wholerepo`` our own. Ported regexes keep the
format (prefix, alphabet, length) and are rewritten to be linear in the text's length:

- every quantifier is bounded;
- every regex starts with a look-behind that refuses a start inside a run of the characters its
  value is made of (or with a literal that cannot repeat inside its own value), so the engine
  tries at most one start per run, and runs tried are disjoint;
- no quantified group holds a quantifier of variable length.

``tests/test_redact_rules.py`` checks the first two on every rule, and docs/redaction.md lists
every rule with its source.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property

from .heuristics import HEX, basic_credentials, classes, decode_base64, entropy, mixed, random_looking, wordy
from .text import Lines, Secret, lowered

Check = Callable[[str, str], bool]  # (value, the text before it on its line) -> a secret?


@dataclass(frozen=True)
class Rule:
    """A token format, run only where one of its markers occurs (no markers: always)."""

    id: str
    kind: str  # what the placeholder says: [REDACTED:<kind>]
    sources: tuple[str, ...]
    markers: tuple[str, ...]  # literal strings: a plain substring search is the cheapest gate
    regex: str
    flags: int = 0
    group: int = 0  # the group holding the value (0: the whole match)
    back: int = 0  # the value starts this many characters before the group (a look-behind read them)
    # ...or, with back_over, up to ``back`` characters before it, as long as they are of these
    back_over: frozenset[str] = frozenset()
    # Markers and regex are lower case and run on the text in lower case (same offsets): one
    # search for "heroku" instead of one each for heroku, HEROKU and Heroku.
    lower: bool = False
    check: Check | None = field(default=None, compare=False)
    # Run on every line that holds a marker, not only on those with a 16+ character run: for
    # values that can be short (base64 of "user:pass").
    anywhere: bool = False

    @cached_property
    def gate(self) -> bool:
        """Whether the markers are looked for first: not when the regex starts with a literal,
        which the engine finds as fast as a substring search (so markers would cost a second
        scan); yes when it starts with a character class, tried position after position."""
        return bool(self.markers) and not _LITERAL_START.match(self.regex)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The compiled regex (compiled on first use: most rules never meet their marker)."""
        return _compile(self.regex, self.flags)


_LITERAL_START = re.compile(r"[A-Za-z0-9_]{2}")


@cache
def _compile(regex: str, flags: int) -> re.Pattern[str]:
    return re.compile(regex, flags)


_LITERAL_HEAD = re.compile(r"(?:[A-Za-z0-9_~-]|\\.)+")
_OPTIONS_HEAD = re.compile(r"\(\?:((?:[A-Za-z0-9_]+\|)+[A-Za-z0-9_]+)\)")
_CLASS_HEAD = re.compile(r"(\[[^\]]+\])(?:\{(\d+)(?:,(\d+))?\})?")


def token(body: str, chars: str = r"\w-", after: str = "") -> str:
    """``body`` as a whole token: no character of ``chars`` right before it, nor of ``after``
    (``chars`` unless given) right after it.

    ``chars`` must hold every character the value is made of but ``=`` (which may only end a
    value, as base64 padding, and may come before one, as in ``KEY=value``): then a start is
    tried only where no earlier try could have read on, which keeps the search linear.

    The look-behind goes after the body's first literal or character, so that the regex still
    starts with it: the engine then skips ahead to where it occurs instead of trying every
    position (a literal prefix is found with a fast substring search).
    """
    tail = rf"(?![{after or chars}])"
    literal = _LITERAL_HEAD.match(body)
    if literal:
        head = literal.group()
        return rf"{head}(?<![{chars}]{head}){body[literal.end() :]}{tail}"
    options = _OPTIONS_HEAD.match(body)
    if options and len({len(o) for o in options.group(1).split("|")}) == 1:
        width = len(options.group(1).split("|")[0])
        return rf"{options.group()}(?<![{chars}].{{{width}}}){body[options.end() :]}{tail}"
    cls = _CLASS_HEAD.match(body)
    if cls and cls.group(2) is not None:
        low = int(cls.group(2))
        high = int(cls.group(3) or low)
        first = cls.group(1)
        rest = rf"{first}{{{low - 1},{high - 1}}}" + body[cls.end() :]
        return rf"{first}(?<![{chars}]{first}){rest}{tail}"
    if cls:
        first = cls.group(1)
        return rf"{first}(?<![{chars}]{first}){body[cls.end() :]}{tail}"
    return rf"(?<![{chars}]){body}{tail}"


# --- checks ----------------------------------------------------------------------------------


def _mixed(value: str, _before: str) -> bool:
    return mixed(value)


def _random(value: str, _before: str) -> bool:
    return random_looking(value)


def _two_cases(value: str, _before: str) -> bool:
    """Letter-only tokens (Hugging Face): random ones have both cases."""
    return classes(value) >= 2 and not wordy(value)


def _dense(value: str, _before: str) -> bool:
    """Mixed and of high entropy: for formats whose prefix alone is a common word or base64."""
    return mixed(value) and entropy(value) >= 3.5 and not wordy(value)


# "aws ... key" before the value, or the access key id it goes with (a CSV row, a positional
# argument: NewStaticCredentials("AKIA...", "SECRET", "")).
_AWS_SECRET_CONTEXT = re.compile(
    r"aws.{0,24}?(?:key|pwd|pw|password|pass|token|secret)|(?-i:A(?:KIA|SIA)[A-Z2-7]{16})", re.IGNORECASE
)


def _aws_secret(value: str, before: str) -> bool:
    """A 40-character base64 value after "aws ... key" (quoted or not, as in ~/.aws/credentials).

    Not hex (that is a commit hash or a digest), not words, and with a digit, ``+`` or ``/``.
    """
    if set(value) <= HEX or classes(value) < 2 or wordy(value):
        return False
    if not any(c.isdigit() or c in "+/" for c in value):
        return False
    return _AWS_SECRET_CONTEXT.search(before[-64:]) is not None


def _jwt_valid(value: str, _before: str) -> bool:
    """A JWT's header and payload are base64url JSON objects (what detect-secrets checks too)."""
    for part in value.split(".")[:2]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return False
        if not isinstance(decoded, dict):
            return False
    return True


_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")


def _discord_valid(value: str, before: str) -> bool:
    """The first part of a Discord bot token is the bot's numeric id in base64."""
    first = value.split(".", 1)[0]
    if not (24 <= len(first) <= 26 and first[0] in "MNO") or before[-1:] in _TOKEN_CHARS:
        return False
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit()


_SK_PREFIX = re.compile(r"sk-(?:(?:proj|svcacct|admin|ant-api\d\d|ant-admin\d\d|or-v1)-)?")


def _sk_valid(value: str, _before: str) -> bool:
    """``sk-`` starts many words-with-dashes: the rest must look random."""
    prefix = _SK_PREFIX.match(value)
    body = value[prefix.end() :] if prefix else value
    return mixed(body) and entropy(body) >= 3.0


def sk_kind(value: str) -> str:
    """Which vendor an ``sk-`` key belongs to."""
    if value.startswith("sk-ant-"):
        return "anthropic-key"
    if re.fullmatch(r"sk-[0-9a-f]{32}", value):
        return "deepseek-key"
    return "openai-key"


_AUTHORIZATION = re.compile(
    r"authorization[\"']?\s{0,4}[:=,]?\s{0,4}[\"']?\s{0,4}basic[ \t]{1,4}$", re.IGNORECASE
)


def _basic(value: str, before: str) -> bool:
    """After an Authorization header's name any base64 is the credential; elsewhere (the word
    "Basic" in prose or code) only base64 that decodes to ``user:password``."""
    if _AUTHORIZATION.search(before[-60:]):  # base64 of any text, or random enough to be a token
        return decode_base64(value) is not None or random_looking(value)
    return basic_credentials(value)


def _telegram(value: str, _before: str) -> bool:
    return mixed(value.split(":", 1)[1])


# Vendors whose keys are UUIDs, as their names are written.
_VENDORS = ("snyk", "hubspot", "postmark", "squarespace", "kucoin")

# --- the table -------------------------------------------------------------------------------

DS = "detect-secrets:"
GL = "gitleaks:"
OWN = ("wholerepo",)
_HEX32 = "[0-9a-f]{32}"

# Order is priority: an earlier rule wins where two find the same text.
RULES: tuple[Rule, ...] = (
    # --- cloud providers
    Rule(
        "aws-access-key-id",
        "aws-access-key",
        (DS + "AWSKeyDetector", GL + "aws-access-token"),
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        r"A(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)(?<![A-Za-z0-9].{4})[0-9A-Z]{16}(?![A-Za-z0-9])",
    ),
    Rule(
        "aws-secret-access-key",
        "aws-secret-key",
        (DS + "AWSKeyDetector",),
        ("aws", "AKIA", "ASIA"),
        token(r"[A-Za-z0-9/+]{40}", r"A-Za-z0-9/+", r"A-Za-z0-9/+="),
        check=_aws_secret,
    ),
    Rule(
        "aws-bedrock-api-key",
        "aws-bedrock-key",
        (GL + "aws-amazon-bedrock-api-key-long-lived",),
        ("ABSK",),
        token(r"ABSK[A-Za-z0-9+/]{109,269}={0,2}", r"\w+/-", r"\w+/=-"),
    ),
    Rule("google-api-key", "google-api-key", (GL + "gcp-api-key",), ("AIza",), token(r"AIza[\w-]{35}")),
    Rule("gcp-client-secret", "gcp-client-secret", OWN, ("GOCSPX-",), token(r"GOCSPX-[A-Za-z0-9_-]{28}")),
    Rule("google-oauth-token", "google-oauth-token", OWN, ("ya29.",), token(r"ya29\.[\w-]{30,500}", r"\w.-")),
    Rule(
        "azure-storage-key",
        "azure-storage-key",
        (DS + "AzureStorageKeyDetector",),
        ("AccountKey=", "SharedAccessKey="),
        r"(?:SharedAccessKey|AccountKey)=([A-Za-z0-9+/]{32,200}={0,2})(?![A-Za-z0-9+/=])",
        group=1,
    ),
    Rule(
        "azure-sas-token",
        "azure-sas-token",
        OWN,
        ("sig=",),
        r"sig=(?<=[?&]sig=)([A-Za-z0-9%+/]{40,200}={0,2})(?![A-Za-z0-9%+/=])",
        group=1,
    ),
    Rule(
        "azure-ad-client-secret",
        "azure-client-secret",
        (GL + "azure-ad-client-secret",),
        ("Q~",),
        token(r"[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34}", r"\w~.-"),
        check=_mixed,
    ),
    Rule(
        "alibaba-access-key-id",
        "alibaba-key",
        (GL + "alibaba-access-key-id",),
        ("LTAI",),
        token(r"LTAI[a-zA-Z0-9]{20}"),
        check=_mixed,
    ),
    Rule(
        "digitalocean-token",
        "digitalocean-token",
        (GL + "digitalocean-pat", GL + "digitalocean-access-token", GL + "digitalocean-refresh-token"),
        ("dop_v1_", "doo_v1_", "dor_v1_"),
        token(r"do[por]_v1_[a-f0-9]{64}"),
    ),
    Rule(
        "cloudflare-origin-ca-key",
        "cloudflare-key",
        (GL + "cloudflare-origin-ca-key",),
        ("v1.0-",),
        token(r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", r"\w.-"),
    ),
    Rule(
        "flyio-token",
        "flyio-token",
        (GL + "flyio-access-token",),
        ("fo1_", "fm1a_", "fm1r_", "fm2_"),
        token(
            r"f(?:o1_[\w-]{43}|m1[ar]_[a-zA-Z0-9+/]{100,2000}={0,3}|m2_[a-zA-Z0-9+/]{100,2000}={0,3})",
            r"\w+/-",
            r"\w+/=-",
        ),
    ),
    Rule(
        "heroku-api-key-v2",
        "heroku-key",
        (GL + "heroku-api-key-v2",),
        ("HRKU-",),
        token(r"HRKU-[A-Za-z0-9_-]{58,100}"),
    ),
    Rule(
        "heroku-api-key",
        "heroku-key",
        (GL + "heroku-api-key",),
        ("heroku",),
        r"heroku\w{0,30}(?:key|token|secret)\w{0,30}['\"]?\s{0,4}(?:=|:|:=|=>)\s{0,4}['\"]?"
        r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![\w-])",
        group=1,
        lower=True,
    ),
    Rule(
        "databricks-api-token",
        "databricks-token",
        (GL + "databricks-api-token",),
        ("dapi",),
        token(r"dapi[a-f0-9]{32}(?:-\d)?"),
        check=_mixed,
    ),
    Rule(
        "scalingo-api-token",
        "scalingo-token",
        (GL + "scalingo-api-token",),
        ("tk-us-",),
        token(r"tk-us-[\w-]{48}"),
    ),
    Rule(
        "planetscale-token",
        "planetscale-token",
        (GL + "planetscale-api-token", GL + "planetscale-oauth-token", GL + "planetscale-password"),
        ("pscale_",),
        token(r"pscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}", r"\w.-", r"\w=.-"),
    ),
    Rule("supabase-token", "supabase-token", OWN, ("sbp_",), token(r"sbp_[a-f0-9]{40}")),
    Rule(
        "tailscale-key",
        "tailscale-key",
        OWN,
        ("tskey-",),
        token(r"tskey-(?:api|auth|client|scim|webhook)-[A-Za-z0-9]{6,40}-[A-Za-z0-9]{16,100}"),
    ),
    Rule(
        "hashicorp-tf-api-token",
        "terraform-token",
        (GL + "hashicorp-tf-api-token",),
        (".atlasv1.",),
        token(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}", r"\w.-", r"\w.=-"),
    ),
    Rule(
        "vault-token",
        "vault-token",
        (GL + "vault-service-token", GL + "vault-batch-token"),
        ("hvs.", "hvb.", "hvr."),
        token(r"hv[sbr]\.[\w-]{24,300}", r"\w.-"),
    ),
    Rule(
        "pulumi-api-token", "pulumi-token", (GL + "pulumi-api-token",), ("pul-",), token(r"pul-[a-f0-9]{40}")
    ),
    Rule(
        "doppler-api-token",
        "doppler-token",
        (GL + "doppler-api-token",),
        ("dp.pt.",),
        token(r"dp\.pt\.[A-Za-z0-9]{43}", r"\w.-"),
    ),
    Rule(
        "octopus-deploy-api-key",
        "octopus-key",
        (GL + "octopus-deploy-api-key",),
        ("API-",),
        token(r"API-[A-Z0-9]{26}"),
        check=_mixed,
    ),
    # --- source hosting, CI and package registries
    Rule(
        "github-token",
        "github-token",
        (DS + "GitHubTokenDetector", GL + "github-pat", GL + "github-oauth", GL + "github-app-token"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        token(r"gh[pousr]_[A-Za-z0-9_]{36,255}"),
    ),
    Rule(
        "github-fine-grained-pat",
        "github-token",
        (GL + "github-fine-grained-pat",),
        ("github_pat_",),
        token(r"github_pat_[A-Za-z0-9_]{60,255}"),
    ),
    Rule(
        "gitlab-routable-token",
        "gitlab-token",
        (GL + "gitlab-pat-routable", GL + "gitlab-runner-authentication-token-routable"),
        ("glpat-", "glrt-"),
        token(r"gl(?:pat|rt)-[0-9a-zA-Z_-]{27,300}\.[0-9a-z]{9}", r"\w.-"),
    ),
    Rule(
        "gitlab-token",
        "gitlab-token",
        (DS + "GitLabTokenDetector", GL + "gitlab-pat", GL + "gitlab-deploy-token", GL + "gitlab-feed-token"),
        ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glffct-"),
        token(r"gl(?:pat|dt|ft|soat|rt|ffct)-[A-Za-z0-9_\-]{20,50}"),
    ),
    Rule(
        "gitlab-runner-registration-token",
        "gitlab-token",
        (DS + "GitLabTokenDetector", GL + "gitlab-rrt"),
        ("GR1348941",),
        token(r"GR1348941[A-Za-z0-9_\-]{20,50}"),
    ),
    Rule(
        "gitlab-other-token",
        "gitlab-token",
        (
            DS + "GitLabTokenDetector",
            GL + "gitlab-cicd-job-token",
            GL + "gitlab-ptt",
            GL + "gitlab-oauth-app-secret",
        ),
        ("glcbt-", "glimt-", "glptt-", "glagent-", "gloas-"),
        token(
            r"gl(?:cbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_\-]{20,50}|imt-[A-Za-z0-9_\-]{25}|"
            r"ptt-[A-Za-z0-9_\-]{40}|agent-[A-Za-z0-9_\-]{50,1024}|oas-[A-Za-z0-9_\-]{64})"
        ),
    ),
    Rule(
        "gitlab-session-cookie",
        "gitlab-token",
        (GL + "gitlab-session-cookie",),
        ("_gitlab_session=",),
        r"_gitlab_session=([0-9a-z]{32})(?![\w-])",
        group=1,
    ),
    Rule("npm-token", "npm-token", (GL + "npm-access-token",), ("npm_",), token(r"npm_[A-Za-z0-9]{36,255}")),
    Rule(
        "npm-auth-token",  # detect-secrets' NpmDetector matches the whole line: too wide to cut out
        "npm-token",
        (DS + "NpmDetector",),
        ("_authToken",),
        r":_authToken=\s{0,4}([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})",
        group=1,
    ),
    Rule(
        "pypi-token",
        "pypi-token",
        (DS + "PypiTokenDetector", GL + "pypi-upload-token"),
        ("pypi-AgE",),
        token(r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[\w-]{50,1000}"),
    ),
    Rule(
        "rubygems-api-token",
        "rubygems-token",
        (GL + "rubygems-api-token",),
        ("rubygems_",),
        token(r"rubygems_[a-f0-9]{48}"),
    ),
    Rule(
        "clojars-api-token",
        "clojars-token",
        (GL + "clojars-api-token",),
        ("CLOJARS_", "clojars_"),
        token(r"(?i:clojars)_[a-z0-9]{60}"),
    ),
    Rule(
        "artifactory-api-key",
        "artifactory-token",
        (GL + "artifactory-api-key", DS + "ArtifactoryDetector"),
        ("AKCp",),
        token(r"AKCp[A-Za-z0-9]{60,100}"),
    ),
    Rule(
        "artifactory-reference-token",
        "artifactory-token",
        (GL + "artifactory-reference-token",),
        ("cmVmd",),
        token(r"cmVmd[A-Za-z0-9]{59}", r"\w+/-", r"\w+/=-"),
        check=_dense,
    ),
    Rule(
        "atlassian-api-token",
        "atlassian-token",
        (GL + "atlassian-api-token",),
        ("ATATT3",),
        token(r"ATATT3[A-Za-z0-9_\-=]{186}", r"\w-", r"\w=-"),
    ),
    Rule(
        "linear-api-key",
        "linear-key",
        (GL + "linear-api-key",),
        ("lin_api_",),
        token(r"lin_api_[a-zA-Z0-9]{40}"),
    ),
    Rule(
        "postman-api-token",
        "postman-token",
        (GL + "postman-api-token",),
        ("PMAK-",),
        token(r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    ),
    Rule(
        "prefect-api-token",
        "prefect-token",
        (GL + "prefect-api-token",),
        ("pnu_",),
        token(r"pnu_[a-zA-Z0-9]{36}"),
    ),
    Rule(
        "readme-api-token",
        "readme-token",
        (GL + "readme-api-token",),
        ("rdme_",),
        token(r"rdme_[a-z0-9]{70}"),
    ),
    Rule(
        "sentry-token",
        "sentry-token",
        (GL + "sentry-user-token", GL + "sentry-org-token"),
        ("sntryu_", "sntrys_"),
        token(r"(?:sntryu_[a-f0-9]{64}|sntrys_eyJ[a-zA-Z0-9+/=_]{60,600})", r"\w+/-", r"\w+/=-"),
    ),
    Rule(
        "infracost-api-token",
        "infracost-token",
        (GL + "infracost-api-token",),
        ("ico-",),
        token(r"ico-[a-zA-Z0-9]{32}"),
        check=_mixed,
    ),
    Rule(
        "harness-api-key",
        "harness-key",
        (GL + "harness-api-key",),
        ("pat.", "sat."),
        token(r"(?:pat|sat)\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9]{24}\.[a-zA-Z0-9]{20}", r"\w.-"),
    ),
    Rule(
        "airtable-pat",
        "airtable-token",
        (GL + "airtable-personnal-access-token",),
        ("pat",),
        token(r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", r"\w.-"),
        check=_mixed,
    ),
    Rule(
        "onepassword-token",
        "1password-token",
        (GL + "1password-secret-key", GL + "1password-service-account-token"),
        ("A3-", "ops_eyJ"),
        token(
            r"(?:A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}|"
            r"ops_eyJ[a-zA-Z0-9+/]{250,8000}={0,3})",
            r"\w+/-",
            r"\w+/=-",
        ),
        check=_mixed,
    ),
    Rule(
        "age-secret-key",
        "age-secret-key",
        (GL + "age-secret-key",),
        ("AGE-SECRET-KEY-1",),
        token(r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ),
    # --- chat, mail and messaging
    Rule(
        "slack-token",
        "slack-token",
        (DS + "SlackDetector", GL + "slack-bot-token", GL + "slack-user-token", GL + "slack-legacy-token"),
        ("xox",),
        token(r"xox(?:e\.xox)?[abposre]-[A-Za-z0-9-]{10,300}", r"\w.-"),
        check=_mixed,
    ),
    Rule(
        "slack-app-token",
        "slack-token",
        (GL + "slack-app-token",),
        ("xapp-",),
        token(r"xapp-\d-[A-Z0-9]{1,20}-\d{1,20}-[a-z0-9]{1,100}"),
    ),
    Rule(
        "slack-webhook",
        "slack-webhook",
        (DS + "SlackDetector", GL + "slack-webhook-url"),
        ("hooks.slack.com",),
        r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_+/]{20,120})(?![\w+/])",
        group=1,
        check=_mixed,
    ),
    Rule(
        "microsoft-teams-webhook",
        "teams-webhook",
        (GL + "microsoft-teams-webhook",),
        ("webhook.office.com",),
        r"webhook\.office\.com/webhookb2/([a-z0-9@-]{20,100}/IncomingWebhook/[a-z0-9]{32}/[a-z0-9-]{36})",
        group=1,
    ),
    Rule(
        "discord-token",
        "discord-token",
        (DS + "DiscordBotTokenDetector",),
        (),
        # Found from its first dot (a quick literal search); the id before it is read backwards.
        r"\.(?<=[\w-]\.)[\w-]{6}\.[\w-]{27,38}(?![\w-])",
        back=26,
        back_over=frozenset(string.ascii_letters + string.digits + "_-"),
        check=_discord_valid,
    ),
    Rule(
        "discord-webhook",
        "discord-webhook",
        OWN,
        ("/api/webhooks/",),
        r"discord(?:app)?\.com/api/webhooks/\d{1,30}/([A-Za-z0-9_-]{60,100})(?![\w-])",
        group=1,
    ),
    Rule(
        "telegram-token",
        "telegram-token",
        (DS + "TelegramBotTokenDetector", GL + "telegram-bot-api-token"),
        (":AA",),
        r"\d(?:(?<=bot\d)|(?<![\w:-]\d))\d{7,9}:AA[\w-]{33}(?![\w-])",
        check=_telegram,
    ),
    Rule(
        "twilio-key",
        "twilio-key",
        (DS + "TwilioKeyDetector", GL + "twilio-api-key"),
        ("SK",),
        token(r"SK[0-9a-f]{32}"),
        check=_mixed,
    ),
    Rule(
        "twilio-account-sid",
        "twilio-key",
        (DS + "TwilioKeyDetector",),
        ("AC",),
        token(r"AC[0-9a-f]{32}"),
        check=_mixed,
    ),
    Rule(
        "sendgrid-key",
        "sendgrid-key",
        (DS + "SendGridDetector", GL + "sendgrid-api-token"),
        ("SG.",),
        token(r"SG\.[\w-]{22}\.[\w-]{43}", r"\w.-"),
    ),
    Rule(
        "sendinblue-key",
        "sendinblue-key",
        (GL + "sendinblue-api-token",),
        ("xkeysib-",),
        token(r"xkeysib-[a-f0-9]{64}-[a-zA-Z0-9]{16}"),
    ),
    Rule(
        "mailgun-key",
        "mailgun-key",
        (GL + "mailgun-private-api-token",),
        ("key-",),
        token(r"key-[0-9a-zA-Z]{32}"),
        check=_mixed,
    ),
    Rule(
        "mailgun-api-key",  # the current format, also that of its signing keys; no keyword needed
        "mailgun-key",
        (GL + "mailgun-signing-key",),
        (),
        # Found from its first "-" (a quick literal search), the 32 hex digits before it read
        # by a look-behind: starting at a character class would try every position.
        r"-(?<=(?<![\w-])[0-9a-f]{32}-)[0-9a-f]{8}-[0-9a-f]{8}(?![\w-])",
        back=32,
        check=_mixed,
    ),
    Rule(
        "mailchimp-key",
        "mailchimp-key",
        (DS + "MailchimpDetector", GL + "mailchimp-api-key"),
        (),
        r"-us(?<=(?<![\w-])[0-9a-z]{32}-us)[0-9]{1,2}(?![\w-])",
        back=32,
        check=_mixed,
    ),
    # --- payments and commerce
    Rule(
        "stripe-key",  # test keys (sk_test_) move no money and are common fixtures: kept
        "stripe-key",
        (DS + "StripeDetector", GL + "stripe-access-token"),
        ("k_live_", "k_prod_"),
        token(r"[rs]k_(?:live|prod)_[0-9a-zA-Z]{10,247}"),
    ),
    Rule(
        "stripe-webhook-secret",
        "stripe-webhook-secret",
        OWN,
        ("whsec_",),
        token(r"whsec_[A-Za-z0-9+/]{24,100}={0,2}", r"\w+/-", r"\w+/=-"),
        check=_mixed,
    ),
    Rule(
        "square-secret",
        "square-secret",
        (DS + "SquareOAuthDetector", GL + "square-access-token"),
        ("sq0csp-", "sq0atp-"),
        token(r"sq0(?:csp-[\w-]{43}|atp-[\w-]{22,60})"),
    ),
    Rule(
        "shopify-token",
        "shopify-token",
        (GL + "shopify-access-token", GL + "shopify-shared-secret"),
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        token(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ),
    Rule(
        "shippo-api-token",
        "shippo-token",
        (GL + "shippo-api-token",),
        ("shippo_",),
        token(r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    ),
    Rule(
        "flutterwave-secret-key",
        "flutterwave-key",
        (GL + "flutterwave-secret-key", GL + "flutterwave-encryption-key"),
        ("FLWSECK",),
        token(r"FLWSECK(?:_TEST)?-[a-hA-H0-9]{12,32}(?:-X)?"),
        check=_mixed,
    ),
    Rule(
        "duffel-api-token",
        "duffel-token",
        (GL + "duffel-api-token",),
        ("duffel_",),
        token(r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}", r"\w-", r"\w=-"),
    ),
    Rule(
        "easypost-api-token",
        "easypost-token",
        (GL + "easypost-api-token", GL + "easypost-test-api-token"),
        ("EZAK", "EZTK"),
        token(r"EZ[AT]K[A-Za-z0-9]{54}"),
    ),
    Rule(
        "facebook-page-token",
        "facebook-token",
        (GL + "facebook-page-access-token",),
        ("EAAM", "EAAC"),
        token(r"EAA[MC][A-Za-z0-9]{100,400}"),
        check=_dense,
    ),
    # --- AI and data services
    Rule(
        "openai-key",  # kind refined by sk_kind: OpenAI, DeepSeek, Anthropic
        "openai-key",
        (
            DS + "OpenAIDetector",
            GL + "openai-api-key",
            GL + "anthropic-api-key",
            GL + "anthropic-admin-api-key",
        ),
        ("sk-",),
        token(_SK_PREFIX.pattern + r"[A-Za-z0-9_-]{20,300}"),
        check=_sk_valid,
    ),
    Rule(
        "huggingface-token",
        "huggingface-token",
        (GL + "huggingface-access-token", GL + "huggingface-organization-api-token"),
        ("hf_", "api_org_"),
        token(r"(?:hf|api_org)_[A-Za-z0-9]{34}"),
        check=_two_cases,
    ),
    Rule(
        "perplexity-api-key",
        "perplexity-key",
        (GL + "perplexity-api-key",),
        ("pplx-",),
        token(r"pplx-[a-zA-Z0-9]{48}"),
    ),
    Rule("groq-api-key", "groq-key", OWN, ("gsk_",), token(r"gsk_[a-zA-Z0-9]{52}")),
    Rule("xai-api-key", "xai-key", OWN, ("xai-",), token(r"xai-[a-zA-Z0-9]{80}")),
    Rule("replicate-api-token", "replicate-token", OWN, ("r8_",), token(r"r8_[a-zA-Z0-9]{37}"), check=_mixed),
    Rule(
        "langsmith-api-key",
        "langsmith-key",
        OWN,
        ("lsv2_",),
        token(r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
    ),
    Rule(
        "notion-api-token",
        "notion-token",
        (GL + "notion-api-token",),
        ("ntn_",),
        token(r"ntn_[0-9]{11}[A-Za-z0-9]{35}"),
    ),
    Rule(
        "clickhouse-cloud-secret",
        "clickhouse-key",
        (GL + "clickhouse-cloud-api-secret-key",),
        ("4b1d",),
        token(r"4b1d[A-Za-z0-9]{38}"),
        check=lambda value, _before: classes(value) == 3,
    ),
    Rule(
        "dynatrace-api-token",
        "dynatrace-token",
        (GL + "dynatrace-api-token",),
        ("dt0c01.",),
        token(r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}", r"\w.-"),
    ),
    Rule(
        "grafana-token",
        "grafana-token",
        (GL + "grafana-api-key", GL + "grafana-cloud-api-token", GL + "grafana-service-account-token"),
        ("eyJrIjoi", "glc_", "glsa_"),
        token(
            r"(?:eyJrIjoi[A-Za-z0-9]{70,400}={0,3}|glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})",
            r"\w+/-",
            r"\w+/=-",
        ),
    ),
    Rule(
        "new-relic-key",
        "new-relic-key",
        (GL + "new-relic-user-api-key", GL + "new-relic-insert-key"),
        ("NRAK-", "NRII-"),
        token(r"(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9-]{32})"),
        check=_mixed,
    ),
    Rule(
        "maxmind-license-key",
        "maxmind-key",
        (GL + "maxmind-license-key",),
        ("_mmk",),
        token(r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk"),
    ),
    Rule(
        "openshift-user-token",
        "openshift-token",
        (GL + "openshift-user-token",),
        ("sha256~",),
        token(r"sha256~[\w-]{43}", r"\w~-"),
    ),
    Rule(
        "adobe-client-secret",
        "adobe-secret",
        (GL + "adobe-client-secret",),
        ("p8e-",),
        token(r"p8e-[A-Za-z0-9]{32}"),
        check=_mixed,
    ),
    Rule(
        "intra42-client-secret",
        "intra42-secret",
        (GL + "intra42-client-secret",),
        ("s-s4t2",),
        token(r"s-s4t2(?:ud|af)-[a-f0-9]{64}"),
    ),
    Rule(
        "frameio-api-token",
        "frameio-token",
        (GL + "frameio-api-token",),
        ("fio-u-",),
        token(r"fio-u-[\w=-]{64}", r"\w-", r"\w=-"),
    ),
    Rule(
        "settlemint-token",
        "settlemint-token",
        (GL + "settlemint-personal-access-token", GL + "settlemint-application-access-token"),
        ("sm_aat_", "sm_pat_", "sm_sat_"),
        token(r"sm_[aps]at_[a-zA-Z0-9]{16}"),
        check=_mixed,
    ),
    Rule(
        "vendor-uuid-token",  # keys that are UUIDs: only next to their vendor's name
        "api-token",
        (
            GL + "snyk-api-token",
            GL + "hubspot-api-key",
            GL + "squarespace-access-token",
            GL + "kucoin-secret-key",
        ),
        _VENDORS,
        r"(?:snyk|hubspot|postmark|squarespace|kucoin)\w{0,30}(?:key|token|secret)\w{0,30}['\"]?\s{0,4}"
        r"(?:=|:|:=|=>)\s{0,4}['\"]?"
        r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![\w-])",
        group=1,
        lower=True,
    ),
    Rule("nuget-api-key", "nuget-key", OWN, ("oy2",), token(r"oy2[a-z0-9]{43}"), check=_mixed),
    Rule("docker-hub-token", "docker-token", OWN, ("dckr_pat_",), token(r"dckr_pat_[A-Za-z0-9_-]{27,60}")),
    Rule(
        "docker-auth",  # "auth" in a Docker config (~/.docker/config.json, .dockerconfigjson)
        "docker-auth",
        OWN,
        ('"auth"',),
        r"\"auth\"\s{0,8}:\s{0,8}\"([A-Za-z0-9+/]{8,2000}={0,2})\"",
        group=1,
        check=_basic,
    ),
    # --- generic shapes
    # --- formats found missing by an adversarial pass (prefixed, so safe without context)
    Rule(
        "square-access-token",
        "square-secret",
        (GL + "square-access-token",),
        ("EAAA",),
        token(r"EAAA[\w-]{22,60}", r"\w+/-", r"\w+/=-"),
        check=_dense,
    ),
    Rule(
        "aws-session-token",
        "aws-session-token",
        OWN,
        ("IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE"),
        token(r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[A-Za-z0-9+/]{100,2000}={0,2}", r"\w+/-", r"\w+/=-"),
    ),
    Rule(
        "new-relic-license-key",
        "new-relic-key",
        OWN,
        ("NRAL",),
        token(r"[a-f0-9]{36}NRAL"),
    ),
    Rule(
        "mapbox-secret-token",
        "mapbox-token",
        OWN,
        ("sk.eyJ",),
        token(r"sk\.eyJ[\w-]{40,200}\.[\w-]{20,40}", r"\w.-"),
    ),
    Rule(
        "dropbox-api-token",
        "dropbox-token",
        (GL + "dropbox-short-lived-api-token",),
        ("sl.",),
        token(r"sl\.[\w-]{130,1500}={0,2}", r"\w.-", r"\w.=-"),
        check=_dense,
    ),
    Rule(
        "sourcegraph-access-token",
        "sourcegraph-token",
        (GL + "sourcegraph-access-token",),
        ("sgp_",),
        token(r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}"),
    ),
    Rule(
        "typeform-api-token",
        "typeform-token",
        (GL + "typeform-api-token",),
        ("tfp_",),
        token(r"tfp_[\w.-]{59}", r"\w.-"),
        check=_mixed,
    ),
    Rule(
        "plaid-access-token",
        "plaid-token",
        (GL + "plaid-api-token",),
        ("access-sandbox-", "access-development-", "access-production-"),
        token(
            r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        ),
    ),
    Rule(
        "yandex-token",
        "yandex-token",
        (GL + "yandex-api-key", GL + "yandex-access-token"),
        ("AQVN", "t1."),
        token(
            r"(?:AQVN[\w-]{35,38}|t1\.[A-Z0-9a-z_-]{1,100}={0,2}\.[A-Z0-9a-z_-]{86}={0,2})", r"\w.-", r"\w.=-"
        ),
        check=_mixed,
    ),
    Rule(
        "defined-networking-api-token",
        "defined-networking-token",
        (GL + "defined-networking-api-token",),
        ("dnkey-",),
        token(r"dnkey-[A-Za-z0-9=_-]{26}-[A-Za-z0-9=_-]{52}", r"\w=-"),
    ),
    Rule(
        "twitter-bearer-token",
        "twitter-token",
        (GL + "twitter-bearer-token",),
        ("AAAAAAAAAAAAAAAAAAAAA",),
        token("A" * 22 + r"[A-Za-z0-9%]{80,100}", r"\w%-"),
        check=_mixed,
    ),
    Rule(
        "firebase-server-key",
        "firebase-key",
        OWN,
        (":APA91b",),
        r"AAAA(?<![\w-]AAAA)[\w-]{7}:APA91b[\w-]{134}(?![\w-])",
    ),
    Rule(
        "google-refresh-token",
        "google-oauth-token",
        OWN,
        ("1//0",),
        token(r"1//0[\w-]{40,300}"),
        check=_dense,
    ),
    Rule(
        "saas-prefixed-token",
        "api-token",
        OWN,
        ("nfp_", "rnd_", "bkua_", "CCIPAT_", "figd_", "pcsk_", "CFPAT-"),
        token(
            r"(?:nfp_[A-Za-z0-9]{36}|rnd_[A-Za-z0-9]{32}|bkua_[a-f0-9]{40}|CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}"
            r"|figd_[\w-]{40}|pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{50,70}|CFPAT-[\w-]{43})"
        ),
        check=_mixed,
    ),
    Rule(
        "sonar-api-token",
        "sonar-token",
        (GL + "sonar-api-token",),
        ("squ_", "sqp_", "sqa_"),
        token(r"sq[upa]_[a-f0-9]{40}"),
    ),
    Rule(
        "resend-api-key",
        "resend-key",
        OWN,
        ("re_",),
        token(r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}"),
        check=_dense,
    ),
    Rule(
        "hubspot-private-app-token",
        "hubspot-token",
        OWN,
        ("pat-na", "pat-eu"),
        token(r"pat-(?:na|eu)\d-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    ),
    Rule(
        "salesforce-access-token",
        "salesforce-token",
        OWN,
        ("00D",),
        token(r"00D[A-Za-z0-9]{12,15}![\w.]{80,120}", r"\w!.-"),
        check=_mixed,
    ),
    Rule(
        "zapier-webhook",
        "zapier-webhook",
        OWN,
        ("hooks.zapier.com/hooks/catch/",),
        r"hooks\.zapier\.com/hooks/catch/(\d{4,12}/[a-z0-9]{4,12})(?![\w-])",
        group=1,
    ),
    Rule(
        "authress-access-key",
        "authress-key",
        (GL + "authress-service-client-access-key",),
        ("sc_", "ext_", "scauth_", "authress_"),
        token(
            r"(?:sc|ext|scauth|authress)_[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_-][a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120}",
            r"\w.+/-",
            r"\w.+/=-",
        ),
        flags=re.IGNORECASE,
    ),
    Rule(
        "jwt",
        "jwt",
        (DS + "JwtTokenDetector", GL + "jwt"),
        ("eyJ",),
        token(
            r"eyJ[A-Za-z0-9_-]{8,1024}={0,2}\.[A-Za-z0-9_-]{8,8192}={0,2}(?:\.[A-Za-z0-9_\-+/]{0,1024}={0,2})?",
            r"\w.-",
            r"\w.+/=-",
        ),
        check=_jwt_valid,
    ),
    Rule(
        "bearer-token",
        "bearer-token",
        OWN,
        ("bearer",),
        r"bearer(?<![\w-].{6})[ \t]{1,4}([a-z0-9_\-.~+/]{20,2000}={0,2})(?![\w.~+/=-])",
        group=1,
        check=_random,
        lower=True,
    ),
    Rule(
        "basic-auth",
        "basic-auth",
        (GL + "curl-auth-header",),
        ("basic",),
        r"basic(?<![\w-].{5})[ \t]{1,4}([a-z0-9+/]{8,2000}={0,2})(?![\w+/=-])",
        group=1,
        check=_basic,
        anywhere=True,
        lower=True,
    ),
)

RULE_IDS = frozenset(rule.id for rule in RULES)
assert len(RULE_IDS) == len(RULES), "rule ids must be unique"


_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_CONTEXT = 100  # characters of a value's line before it that a rule's check sees


def find_tokens(rules: tuple[Rule, ...], lines: Lines) -> Iterator[Secret]:
    """The values of ``rules``' formats in ``lines``: each rule runs only where a marker occurs."""
    joined = lines.text
    low = ""
    for rule in rules:
        text = joined
        if rule.lower:
            text = low = low or lowered(joined)
        # Markers first where the regex starts with a class, and for any rule not compiled yet: a
        # warm run checks a few file names, and compiling every rule for them costs 60 ms.
        gated = rule.gate or (rule.markers and "pattern" not in vars(rule))
        if gated and not any(m in text for m in rule.markers):
            continue
        for m in rule.pattern.finditer(text):
            start, end = m.span(rule.group)
            if start < 0:
                continue
            if rule.back_over:
                limit = max(0, start - rule.back)
                while start > limit and joined[start - 1] in rule.back_over:
                    start -= 1
            else:
                start -= rule.back
            if end < len(joined) and joined[end] in _ALNUM:
                continue  # part of a longer word: not this format (the regex saw its start)
            value = joined[start:end]
            if "EXAMPLE" in value.upper() or len(set(value)) < 8:
                continue  # documented examples (AKIAIOSFODNN7EXAMPLE) and xxxx stand-ins
            pos, line, column = lines.locate(start)
            if rule.check is not None and not rule.check(value, line[max(0, column - _CONTEXT) : column]):
                continue
            kind = sk_kind(value) if rule.kind == "openai-key" else rule.kind
            yield Secret(kind, ((pos, pos + len(value)),))
