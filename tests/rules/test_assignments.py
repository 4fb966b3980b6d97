"""A secret is found however it is written: syntax × identifier style × credential format.

Values are random strings of each format's shape (made here, never real credentials); identifiers are built
from the vendor's name in every case style. The negatives matrix is what must not be a finding: placeholders,
the name of a secret instead of its value, CSRF tokens, ids, hashes in file names, documented example keys.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from filter.formats.derive import derived
from filter.model import Category, TextSegment
from filter.rules import SHIPPED_PACKS, Fingerprinter, Ruleset, load_ruleset

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"


@pytest.fixture(scope="module")
def secrets_ruleset() -> Ruleset:
    return load_ruleset([SHIPPED_PACKS / "secrets.yaml"], Fingerprinter(b"test-key"))


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    """A random string that reads as one: at least one digit, and both cases when the alphabet has them."""
    while True:
        v = "".join(rng.choice(alphabet) for _ in range(n))
        cased = n < 12 or not any(c.isupper() for c in alphabet) or (
            sum(c.isupper() for c in v) >= 3 and sum(c.islower() for c in v) >= 3)
        if (n < 12 or any(c.isdigit() for c in v)) and cased and len(set(v)) > min(n, len(set(alphabet))) // 3:
            return v


@dataclass(frozen=True)
class Format:
    """A credential format: the words of its name and a maker of random values of its shape."""

    words: tuple[str, ...]
    make: Callable[[random.Random], str]


def shape(alphabet: str, n: int, prefix: str = "") -> Callable[[random.Random], str]:
    return lambda rng: prefix + _random(rng, alphabet, n)


def uuid(rng: random.Random) -> str:
    return "-".join(_random(rng, HEX, n) for n in (8, 4, 4, 4, 12))


# Formats without a distinctive prefix (found next to the vendor's name) and generic secret names.
FORMATS = {
    "adafruit": Format(("adafruit",), shape(ALNUM + "_-", 32)),
    "algolia": Format(("algolia",), shape(ALNUM, 32)),
    "asana": Format(("asana",), shape(ALNUM, 32)),
    "bitbucket": Format(("bitbucket",), shape(ALNUM, 32)),
    "codecov": Format(("codecov",), shape(ALNUM, 32)),
    "confluent": Format(("confluent",), shape(ALNUM, 64)),
    "contentful": Format(("contentful",), shape(ALNUM + "_-", 43)),
    "discord": Format(("discord",), shape(HEX, 64)),
    "dropbox": Format(("dropbox",), shape(LOWER_ALNUM, 15)),
    "etsy": Format(("etsy",), shape(LOWER_ALNUM, 24)),
    "fastly": Format(("fastly",), shape(ALNUM + "_-", 32)),
    "finnhub": Format(("finnhub",), shape(LOWER_ALNUM, 20)),
    "heroku": Format(("heroku",), uuid),
    "hubspot": Format(("hubspot",), uuid),
    "intercom": Format(("intercom",), shape(ALNUM + "_-", 60)),
    "kucoin": Format(("kucoin",), shape(HEX, 24)),
    "linkedin": Format(("linkedin",), shape(LOWER_ALNUM, 14)),
    "looker": Format(("looker",), shape(ALNUM, 20)),
    "mailgun": Format(("mailgun",), shape(HEX, 32, "key-")),
    "mattermost": Format(("mattermost",), shape(LOWER_ALNUM, 26)),
    "meraki": Format(("meraki",), shape(HEX, 40)),
    "netlify": Format(("netlify",), shape(ALNUM + "_-", 43)),
    "plaid": Format(("plaid",), shape(LOWER_ALNUM, 30)),
    "sentry": Format(("sentry",), shape(HEX, 64)),
    "squarespace": Format(("squarespace",), uuid),
    "travis": Format(("travis",), shape(ALNUM, 22)),
    "twitch": Format(("twitch",), shape(LOWER_ALNUM, 30)),
    "twitter": Format(("twitter",), shape(ALNUM, 50)),
    "zendesk": Format(("zendesk",), shape(ALNUM, 40)),
    "generic token": Format(("service",), shape(ALNUM + "_-", 40)),
    "generic secret": Format(("client",), shape(ALNUM, 32)),
}

# The last word of the identifier: what the value is (the vendor name comes first). A bare `key` counts only
# as the last word of a longer name (`mapbox_key`, `mapboxKey`, `mapbox.key`), never `key` alone.
KINDS = ("token", "secret", "api key", "access key", "key")


def ident(words: list[str], style: str) -> str:
    match style:
        case "snake":
            return "_".join(words)
        case "upper":
            return "_".join(words).upper()
        case "camel":
            return words[0] + "".join(w.capitalize() for w in words[1:])
        case "pascal":
            return "".join(w.capitalize() for w in words)
        case "kebab":
            return "-".join(words)
        case "dotted":
            return ".".join(words)
    raise ValueError(style)


STYLES = ("snake", "upper", "camel", "pascal", "kebab", "dotted")

# {n}: the identifier in the template's own style (or the style under test with {i}); {v}: the value.
SYNTAXES: dict[str, str] = {
    "ini": "{i}={v}",
    "ini spaced quoted": '{i} = "{v}"',
    "dotenv export": "export {I}={v}",
    "json": '{{\n  "{i}": "{v}"\n}}',
    "json escaped in string": '{{"config.ini": "{I}={v}\\nBACKUP_ENABLED=true"}}',
    "yaml": "{i}: {v}",
    "yaml quoted": "{i}: '{v}'",
    "toml": '[service]\n{i} = "{v}"',
    "properties dotted": "app.{i}={v}",
    "xml element": "<{c}>{v}</{c}>",
    "xml element multiline": "<{c}>\n    {v}\n</{c}>",
    "xml attribute": '<entry key="{c}" value="{v}" />',
    "python": '{s} = "{v}"',
    "python env fallback": '{s} = os.getenv("{I}", "{v}")',
    "go var typed": 'var {c} string = "{v}"',
    "go short": '{c} := "{v}"',
    "go backticks": "{c} := `{v}`",
    "java": 'String {c} = "{v}";',
    "csharp": 'string {c} = "{v}";',
    "kotlin typed": 'val {c}: String = "{v}"',
    "typescript const": 'const {c}: string = "{v}";',
    "javascript object": "const cfg = {{ {c}: '{v}' }};",
    "php concat": '${c} .= "{v}";',
    "php null coalesce": '${c} ??= "{v}";',
    "php array": "$config['{s}'] = '{v}';",
    "ruby hash rocket": '  "{c}" => "{v}",',
    "r arrow": '{s} <- "{v}"',
    "make recursive": '{I} = "{v}"',
    "make simple": '{I} := "{v}"',
    "make shell": '{I} ::= "{v}"',
    "make evaluated": '{I} :::= "{v}"',
    "make conditional": '{I} ?= "{v}"',
    "function argument": 'System.setProperty("{I}", "{v}")',
    "map put": 'headers.put("{k}", "{v}");',
    "dockerfile env": "ENV {I} {v}",
    "dockerfile env grep hit": "Dockerfile:7:ENV {I} {v}",
    "cli flag grep hit": "scripts/run.sh:5:--{k} {v}",
    "dockerfile arg": "ARG {I}={v}",
    "powershell env": '$env:{I} = "{v}"',
    "windows setx": 'setx {I} "{v}"',
    "cli flag equals": "deploy --{k}={v}",
    "cli flag spaced": "deploy --{k} {v}",
    "hcl": '{s} = "{v}"',
    "query string": "https://api.acme.io/v1?{c}={v}&page=2",
    "spring dotted": "spring.{d}={v}",
}


def render(template: str, words: list[str], style: str, value: str) -> str:
    i = ident(words, style)
    return template.format(
        i=i, v=value, I=ident(words, "upper"), c=ident(words, "camel") if style in ("snake", "upper", "kebab", "dotted") else i,
        s=ident(words, "snake") if style in ("camel", "pascal", "kebab", "dotted") else i,
        k=ident(words, "kebab"), d=ident(words, "dotted"),
    )


def found(ruleset: Ruleset, text: str, value: str) -> bool:
    """A secret finding whose span covers the value, scanning the text and its decoded copies as the pipeline
    does (JSON escapes such as `\\/` inside a string are undone in a derived copy, filter.formats.derive)."""
    start = text.index(value)
    segments = [TextSegment("t", text)]
    for f in ruleset.scan([*segments, *derived(segments)]):
        if f.category is Category.SECRET and f.start <= start and f.end >= start + len(value):
            return True
    return False


@pytest.mark.parametrize("syntax", list(SYNTAXES))
def test_every_format_in_every_identifier_style_is_found(secrets_ruleset: Ruleset, syntax: str) -> None:
    rng = random.Random(f"assignments/{syntax}")
    template = SYNTAXES[syntax]
    missed = []
    for label, fmt in FORMATS.items():
        for n, style in enumerate(STYLES):
            words = [*fmt.words, *KINDS[n % len(KINDS)].split()]
            value = fmt.make(rng)
            text = render(template, words, style, value)
            if not found(secrets_ruleset, text, value):
                missed.append(f"{label} / {style}: {text!r}")
    assert missed == []


PASSWORD_SYNTAXES = {
    "dotenv": "DB_PASSWORD={v}",
    "yaml nested": "spring:\n  datasource:\n    password: {v}\n",
    "spring dotted": "spring.datasource.password={v}",
    "camel": 'const dbPassword = "{v}";',
    "pascal xml": "<DbPassword>{v}</DbPassword>",
    "go typed": 'var smtpPassword string = "{v}"',
    "kwarg": 'connect(host="db", user="etl", password="{v}")',
    "php concat": '$mailPassword .= "{v}";',
    "makefile": 'DB_PASS ::= "{v}"',
    "cli flag": "mysql --password={v} -h db",
    "joined upper": "export PGPASSWORD={v}",
    "powershell": '$env:DB_PASSWORD = "{v}"',
}


@pytest.mark.parametrize("syntax", list(PASSWORD_SYNTAXES))
def test_passwords_are_found_in_every_syntax(secrets_ruleset: Ruleset, syntax: str) -> None:
    rng = random.Random(f"passwords/{syntax}")
    for _ in range(5):
        value = _random(rng, ALNUM, 10) + rng.choice("#!$%") + _random(rng, ALNUM, 4)
        text = PASSWORD_SYNTAXES[syntax].format(v=value)
        assert found(secrets_ruleset, text, value), text


CONNECTION_STRINGS = {
    "postgres": "postgres://app:{p}@db.internal:5432/orders",
    "postgresql": "postgresql://app:{p}@db.internal/orders?sslmode=require",
    "mysql": "mysql://root:{p}@127.0.0.1:3306/shop",
    "mongodb": "mongodb://svc:{p}@mongo-0.internal:27017/admin",
    "mongodb srv": "mongodb+srv://svc:{p}@cluster0.ab1cd.mongodb.net/app",
    "redis": "redis://default:{p}@cache.internal:6379/0",
    "rediss": "rediss://:{p}@cache.internal:6380",
    "amqp": "amqp://orders:{p}@rabbitmq.internal:5672/vhost",
    "mssql": "Server=tcp:sql.internal,1433;Database=app;User ID=svc;Password={p};Encrypt=true;",
    "jdbc": "jdbc:postgresql://db.internal:5432/app?user=svc&password={p}",
    "kafka sasl": (
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="svc" password="{p}";'
    ),
    "curl user": "curl -u deploy:{p} https://repo.internal/upload",
    "mysql -p": "mysql -u root -p{p} -h db.internal shop",
    "curl header": "curl -H 'Authorization: Bearer {p}' https://api.internal/v1",
    "escaped url": '{{"url": "https:\\/\\/deploy:{p}@repo.internal\\/upload"}}',
}


@pytest.mark.parametrize("kind", list(CONNECTION_STRINGS))
def test_connection_strings_and_command_lines_are_found(secrets_ruleset: Ruleset, kind: str) -> None:
    rng = random.Random(f"conn/{kind}")
    value = _random(rng, ALNUM, 20)
    text = CONNECTION_STRINGS[kind].format(p=value)
    assert found(secrets_ruleset, text, value), text


def _azurite_key() -> str:
    # Azurite's documented development account key, assembled so no scanner mistakes this file for a leak.
    return "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" + "/K1SZFPTOtr/KBHBeksoGMGw=="


NEGATIVES = {
    "placeholder angle": "postgres://<user>:<password>@db.internal:5432/app",
    "placeholder angle pair": "curl -u <user:password> https://api.internal",
    "placeholder brackets": "DB_PASSWORD=[PASSWORD]",
    "placeholder brackets url": "mysql://[USER]:[PASSWORD]@localhost/db",
    "placeholder env": "API_TOKEN=${API_TOKEN}",
    "placeholder mustache": 'api_key: "{{ api_key }}"',
    "placeholder your": "ADAFRUIT_TOKEN=your-adafruit-token-here",
    "placeholder xxx": 'sentry_token = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    "placeholder changeme": "DB_PASSWORD=changeme",
    "placeholder masked": 'api_key: "****************************************"',
    "placeholder repeated": 'client_secret = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"',
    "placeholder sequential": 'api_key = "0123456789abcdefghijklmnopqrstuv"',
    "name of a secret": 'secret_name = "STRIPE_SECRET_KEY"',
    "name of a secret camel": 'const tokenName = "githubDeployTokenForCi2";',
    "secret file path": "PASSWORD_FILE=/run/secrets/db_password",
    "secret reference": "api_key = os.environ['PAYMENTS_API_KEY']",
    "csrf python": 'csrf_token = "Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae"',
    "csrf html": '<input type="hidden" name="csrfmiddlewaretoken" value="Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae">',
    "csrf meta": '<meta name="csrf-token" content="Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae">',
    "csrf header": "X-CSRF-Token: Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae",
    "page token": '{"nextPageToken": "CkQKFgoMcmVzb3VyY2VfaWQSBhoEOGYzYRIg"}',
    "request id": 'request_id = "9f86d081-884c-4d63-a3f2-7b2e1c0d9a41"',
    "asset hash": "<script src=\"/static/js/main.3f9a2c7b1e8d4f6a0b5c9e2d7f1a3b8c.chunk.js\"></script>",
    "asset hash vendor": "sentry/static/app.4c1f9e3b7a2d8c6f0e5b1a9d3c7f2e8b.js",
    "commit sha near vendor": "see https://github.com/acme/sentry-cli/commit/4c1f9e3b7a2d8c6f0e5b1a9d3c7f2e8b4a6d1c3e",
    "documented aws example": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "key alone": 'key = "Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae"',
    "key then more of the name": 'mapbox_key_id = "Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae"',
    "key inside a word": 'const keyboardLayout = "Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae";',
    "public key": 'vapidPublicKey: "BEl62iUYgUivxIkv69yViEuiBIaIb9SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"',
    "publishable key": "stripe_publishable_key = 'Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae'",
    "pattern is not a pat": 'filePattern = "Xk29fLq0ZpW7rT3vNb8YcM1sHd6Jg4Ae"',
    "azurite": f"AZURE_STORAGE_KEY={_azurite_key()}",
    "azurite connection string": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={_azurite_key()};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVES))
def test_look_alikes_are_not_findings(secrets_ruleset: Ruleset, case: str) -> None:
    findings = secrets_ruleset.scan([TextSegment("t", NEGATIVES[case])])
    assert [f.rule_id for f in findings] == []


# Placeholders by kind where the value goes, in the syntaxes whose rules take almost any value (dotenv files,
# connection strings) as well as the generic assignments.
PLACEHOLDER_VALUES = {
    "template": ["#{DeployToken}#", "@deploy.token@", "__DEPLOY_TOKEN__", "$(DEPLOY_TOKEN)"],
    "filler": ["sk_live_bbbbbbbbbbbbbbbbbbbbbbbbbbbb", "AKIA7777777777777777", "xyz789xyz789xyz789xyz789"],
    "phrase": ["super-secret-signing-key", "token-goes-here", "not-a-real-secret", "change_this_password"],
    "name of a secret": ["PAYMENTS_DEPLOY_TOKEN", "DeployTokenSecretName", "steps.login.outputs.token",
                         "secrets.DEPLOY_TOKEN", "prod/billing/deploy-token"],
    "store reference": ["op://platform/deploy/token", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-Ab12Cd"],
}
PLACEHOLDER_SYNTAXES = {
    "dotenv": "APP_NAME=billing\nDEPLOY_TOKEN={v}\nLOG_LEVEL=info\n",
    "yaml": "deploy:\n  deploy_token: \"{v}\"\n",
    "postgres url": "DATABASE_URL=postgres://app:{v}@db.internal:5432/app",
    "ado.net": "Server=db.internal;Database=app;User Id=app;Password={v};",
    "password": "db_password = \"{v}\"",
}


@pytest.fixture(scope="module")
def all_packs() -> Ruleset:
    return load_ruleset([SHIPPED_PACKS], Fingerprinter(b"test-key"))


@pytest.mark.parametrize("kind", list(PLACEHOLDER_VALUES))
def test_placeholder_kinds_are_not_findings_in_any_syntax(all_packs: Ruleset, kind: str) -> None:
    flagged = []
    for value in PLACEHOLDER_VALUES[kind]:
        for syntax, template in PLACEHOLDER_SYNTAXES.items():
            text = template.format(v=value)
            rules = [f.rule_id for f in all_packs.scan([TextSegment("t", text)]) if f.category is not Category.PII]
            if rules:
                flagged.append(f"{syntax}: {text!r} {rules}")
    assert flagged == []


# Real-looking values beside placeholder words or in a placeholder's outline: still findings.
REAL_BESIDE_PLACEHOLDER_WORDS = {
    "phrase then random": ("JWT_SECRET=super-secret-{r}\nJWT_TTL=3600\n", "{r}"),
    "your in the name": ('your_api_key = "{r}"', "{r}"),
    "example host": ("DATABASE_URL=postgres://app:{r}@db.example.com:5432/app", "{r}"),
    "dotted random": ('deploy_token: "SG.{r}.{r2}"', "{r}"),
    "slashed random": ('deploy_token: "ci/{r}"', "{r}"),
    "run then random": ("DEPLOY_TOKEN=AAAAAAAAAAAAAAAAAAAAA{r}{r2}\nREGION=eu\n", "{r}"),
    "changeme comment": ('api_token = "{r}"  # changeme before release', "{r}"),
}


@pytest.mark.parametrize("case", list(REAL_BESIDE_PLACEHOLDER_WORDS))
def test_real_values_beside_placeholder_words_are_found(all_packs: Ruleset, case: str) -> None:
    rng = random.Random(f"beside/{case}")
    r, r2 = _random(rng, ALNUM, 24), _random(rng, ALNUM, 30)
    template, value = REAL_BESIDE_PLACEHOLDER_WORDS[case]
    text = template.format(r=r, r2=r2)
    hits = [f for f in all_packs.scan([TextSegment("t", text)]) if f.category is not Category.PII]
    start = text.index(value.format(r=r, r2=r2))
    assert any(f.start <= start < f.end for f in hits), text


def _pem_body(rng: random.Random, lines: int = 12) -> str:
    alphabet = ALNUM + "+/"
    return "\n".join("".join(rng.choice(alphabet) for _ in range(64)) for _ in range(lines))


def _coverage_cases(rng: random.Random) -> dict[str, tuple[str, str]]:
    """(text, the value that must be covered) for formats seen in agents' requests."""
    key, org, project = _random(rng, HEX, 32), rng.randint(10**5, 10**6), rng.randint(10**6, 10**7)
    self_hosted = _random(rng, HEX, 32)
    user = _random(rng, HEX, 64)
    body, body2 = _pem_body(rng), _pem_body(rng)
    return {
        "sentry dsn": (f'sentry_sdk.init(dsn="https://{key}@o{org}.ingest.us.sentry.io/{project}")', key),
        "sentry dsn self-hosted": (f"SENTRY_DSN=https://{self_hosted}@sentry.acme.internal/7", self_hosted),
        "sentry user token": (f"SENTRY_AUTH_TOKEN=sntryu_{user}", user),
        "encrypted rsa pem": (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,"
            f"{_random(rng, HEX, 32).upper()}\n\n{body}\n-----END RSA PRIVATE KEY-----\n",
            body.split("\n")[0],
        ),
        "encrypted pkcs8 pem": (
            f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body2}\n-----END ENCRYPTED PRIVATE KEY-----\n", body2.split("\n")[0],
        ),
    }


@pytest.mark.parametrize("case", list(_coverage_cases(random.Random(0))))
def test_formats_seen_in_agent_requests_are_found(secrets_ruleset: Ruleset, case: str) -> None:
    text, value = _coverage_cases(random.Random(f"coverage/{case}"))[case]
    assert found(secrets_ruleset, text, value), text


@pytest.mark.parametrize("name, secret", [
    ("STRIPE_KEY", True), ("STRIPE_KEY_PROD", True), ("API_KEY2", True), ("DEPLOY_KEYS", True), ("GITLAB_PAT", True),
    ("LD_LIBRARY_PATH", False), ("FILE_PATTERN", False), ("DEFAULT_KEYBOARD", False), ("URL_PATTERNS", False),
])  # fmt: skip
def test_an_all_capitals_name_word_does_not_run_on_into_a_longer_word(
    secrets_ruleset: Ruleset, name: str, secret: bool
) -> None:
    """`KEY` and `PAT` end an UPPER_SNAKE name or go on after a separator; `PATH` and `PATTERN` are other words."""
    value = _random(random.Random(name), ALNUM, 32)
    assert found(secrets_ruleset, f"{name}={value}\n", value) is secret
