"""Credential, PII and restricted-file kinds, each generated from its vendor's documented format.

Written from the vendors' format descriptions (prefix, alphabet, length, checksum), independently of the
shipped rule packs: nothing here reads a pack, its patterns or its examples. Every generator takes a seeded
`random.Random`, so the corpus is the same on every run.

A Kind says how its value is made, which finding category must catch it, and how it reads in context:
`env` is the variable/field name it is usually assigned to; `context=True` marks values that are only a
credential because of that name (an AWS secret key is 40 base64 characters, nothing more), so they are
always shown next to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from tests.quality import keymaterial as km

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
B62 = DIGITS + UPPER + LOWER  # GitHub/npm checksum alphabet order
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
HEXU = HEX.upper()
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BASE32 = UPPER + "234567"
LOWER_ALNUM = LOWER + DIGITS
UPPER_ALNUM = UPPER + DIGITS
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def rs(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def digits(rng: random.Random, n: int, first_nonzero: bool = True) -> str:
    head = rng.choice("123456789") if first_nonzero else rng.choice(DIGITS)
    return head + rs(rng, DIGITS, n - 1)


def b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def uuid4(rng: random.Random) -> str:
    h = rs(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:32]}"


def password(rng: random.Random, n: int | None = None, specials: str = "!*-_.~") -> str:
    """A generated password: letters and digits with a few URL-safe symbols, at least one of each class."""
    n = n or rng.randrange(16, 29)
    chars = [rng.choice(UPPER), rng.choice(LOWER), rng.choice(DIGITS), rng.choice(specials)]
    chars += [rng.choice(ALNUM + specials) for _ in range(n - 4)]
    rng.shuffle(chars)
    return "".join(chars)


# -- checksummed tokens ------------------------------------------------------------------------------------


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(B62[r])
    return "".join(reversed(out)).rjust(width, "0")


def crc_token(prefix: str, rng: random.Random) -> str:
    """GitHub (ghp_, gho_, ghu_, ghs_, ghr_) and npm (npm_) format: 30 random base62 + base62 CRC32 of them."""
    body = rs(rng, B62, 30)
    return prefix + body + base62(zlib.crc32(body.encode()), 6)


def bad_crc_token(prefix: str, rng: random.Random) -> str:
    body = rs(rng, B62, 30)
    good = base62(zlib.crc32(body.encode()), 6)
    bad = good
    while bad == good:
        bad = rs(rng, B62, 6)
    return prefix + body + bad


# -- JWT --------------------------------------------------------------------------------------------------


def jwt(rng: random.Random, claims: dict[str, object] | None = None) -> str:
    alg = rng.choice(["HS256", "RS256", "ES256"])
    header: dict[str, object] = {"alg": alg, "typ": "JWT"}
    if alg != "HS256":
        header["kid"] = rs(rng, B64URL, 22)
    now = 1_700_000_000 + rng.randrange(40_000_000)
    payload = claims or {
        "iss": rng.choice(["https://auth.northwind.io/", "https://login.acmecorp.net", "urn:globex:sso"]),
        "sub": rng.choice([uuid4(rng), f"user_{rs(rng, LOWER_ALNUM, 12)}", digits(rng, 9)]),
        "aud": rng.choice(["api", "https://api.northwind.io", "billing-service"]),
        "iat": now,
        "exp": now + rng.choice([900, 3600, 86400]),
        "scope": rng.choice(["read:repo write:repo", "openid profile", "admin"]),
    }
    signing_input = b64url_nopad(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url_nopad(
        json.dumps(payload, separators=(",", ":")).encode()
    )
    if alg == "HS256":
        sig = hmac.new(km.rand_bytes(rng, 32), signing_input.encode(), hashlib.sha256).digest()
    elif alg == "RS256":
        sig = km.rand_bytes(rng, 256)
    else:
        sig = km.rand_bytes(rng, 64)
    return signing_input + "." + b64url_nopad(sig)


# -- PII --------------------------------------------------------------------------------------------------


def luhn_complete(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return partial + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


CARD_BRANDS: dict[str, tuple[Callable[[random.Random], str], int, tuple[int, ...]]] = {
    # brand: (IIN prefix, length, print grouping)
    "visa": (lambda r: "4", 16, (4, 4, 4, 4)),
    "mastercard": (lambda r: r.choice([str(r.randrange(51, 56)), str(r.randrange(2221, 2721))]), 16, (4, 4, 4, 4)),
    "amex": (lambda r: r.choice(["34", "37"]), 15, (4, 6, 5)),
    "discover": (lambda r: r.choice(["6011", str(r.randrange(644, 650)), "65"]), 16, (4, 4, 4, 4)),
    "diners": (lambda r: r.choice(["36", "38", str(r.randrange(300, 306))]), 14, (4, 6, 4)),
    "jcb": (lambda r: str(r.randrange(3528, 3590)), 16, (4, 4, 4, 4)),
}


def card(brand: str) -> Callable[[random.Random], str]:
    prefix_of, length, groups = CARD_BRANDS[brand]

    def gen(rng: random.Random) -> str:
        prefix = prefix_of(rng)
        number = luhn_complete(prefix + rs(rng, DIGITS, length - len(prefix) - 1))
        style = rng.choice(["plain", "space", "space", "dash"])
        if style == "plain":
            return number
        parts, i = [], 0
        for g in groups:
            parts.append(number[i : i + g])
            i += g
        return (" " if style == "space" else "-").join(parts)

    return gen


# country: (length, BBAN builder)
def _account(rng: random.Random, n: int) -> str:
    """An alphanumeric account number as banks issue them: digits, now and then a letter."""
    return "".join(rng.choice(UPPER) if rng.random() < 0.08 else rng.choice(DIGITS) for _ in range(n))


IBAN_COUNTRIES: dict[str, Callable[[random.Random], str]] = {
    "DE": lambda r: rs(r, DIGITS, 18),
    "GB": lambda r: rs(r, UPPER, 4) + rs(r, DIGITS, 14),
    "FR": lambda r: rs(r, DIGITS, 10) + _account(r, 11) + rs(r, DIGITS, 2),
    "NL": lambda r: rs(r, UPPER, 4) + rs(r, DIGITS, 10),
    "ES": lambda r: rs(r, DIGITS, 20),
    "IT": lambda r: rs(r, UPPER, 1) + rs(r, DIGITS, 10) + _account(r, 12),
    "CH": lambda r: rs(r, DIGITS, 5) + _account(r, 12),
    "BE": lambda r: rs(r, DIGITS, 12),
    "PL": lambda r: rs(r, DIGITS, 24),
    "AT": lambda r: rs(r, DIGITS, 16),
    "SE": lambda r: rs(r, DIGITS, 20),
    "IE": lambda r: rs(r, UPPER, 4) + rs(r, DIGITS, 14),
}


def iban_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in moved))
    return f"{98 - number % 97:02d}"


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_COUNTRIES))
    bban = IBAN_COUNTRIES[country](rng)
    value = country + iban_check(country, bban) + bban
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randrange(1, 100), rng.randrange(1, 10000)
    return f"{area:03d}-{group:02d}-{serial:04d}"


# Real NANP area codes (geographic, in service).
NANP_AREAS = (201, 206, 212, 213, 214, 267, 303, 305, 312, 404, 415, 469, 503, 512, 602, 617, 646, 702, 713,
              718, 720, 773, 818, 917, 929, 949, 972)


def nanp_phone(rng: random.Random) -> str:
    area = rng.choice(NANP_AREAS)
    while True:
        exchange = rng.randrange(200, 1000)
        if exchange % 100 != 11 and exchange != 555:
            break
    line = rng.randrange(0, 10000)
    a, e, n = str(area), str(exchange), f"{line:04d}"
    return rng.choice([f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"+1 {a} {e} {n}", f"+1-{a}-{e}-{n}"])


def e164_phone(rng: random.Random) -> str:
    """A mobile number in E.164 (+CC national), compact or in the country's usual grouping."""
    plans: list[Callable[[], tuple[str, str, tuple[int, ...]]]] = [
        lambda: ("44", "7" + str(rng.randrange(4, 10)) + rs(rng, DIGITS, 8), (4, 6)),
        lambda: ("49", "1" + rng.choice(["51", "52", "60", "70", "71", "76"]) + rs(rng, DIGITS, 8), (3, 8)),
        lambda: ("33", rng.choice("67") + rs(rng, DIGITS, 8), (1, 2, 2, 2, 2)),
        lambda: ("61", "4" + rs(rng, DIGITS, 8), (3, 3, 3)),
        lambda: ("81", rng.choice(["70", "80", "90"]) + rs(rng, DIGITS, 8), (2, 4, 4)),
        lambda: ("91", rng.choice("6789") + rs(rng, DIGITS, 9), (5, 5)),
        lambda: ("34", "6" + rs(rng, DIGITS, 8), (3, 3, 3)),
        lambda: ("55", "11" + "9" + rs(rng, DIGITS, 8), (2, 5, 4)),
    ]
    cc, national, groups = rng.choice(plans)()
    if rng.random() < 0.5:
        return f"+{cc}{national}"
    parts, i = [], 0
    for g in groups:
        parts.append(national[i : i + g])
        i += g
    return f"+{cc} " + " ".join(parts)


FIRST = ("priya", "marco", "jennifer", "wei", "olusegun", "anna", "tomas", "kenji", "fatima", "liam", "sofia",
         "daniel", "aisha", "mateo", "hannah", "raj")
LAST = ("natarajan", "rossi", "okafor", "chen", "lindqvist", "kowalski", "tanaka", "haddad", "murphy", "garcia",
        "schmidt", "novak", "dubois", "silva", "oconnor", "patel")
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.co.uk", "proton.me", "fastmail.fm", "northwind-traders.com",
                 "globex.io", "initech.com", "hooli.xyz", "umbrella-health.org", "stark-industries.de", "wayne.co")


def email(rng: random.Random) -> str:
    f, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{rng.randrange(10, 99)}", f"{f}"])
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


# -- kinds ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    group: str  # cloud | vcs | chat | payment | llm | registry | observability | saas | token | private-key |
    #             connection-string | generic | pii | file | tool-read
    category: str  # the finding category that must catch it: secret | pii | file
    gen: Callable[[random.Random], str]
    env: str = "API_KEY"
    context: bool = False
    multiline: bool = False
    filename: str = ""  # file kinds: where the content lives
    prose: tuple[str, ...] = ()  # sentence templates ({v}, {env}); defaults by group
    accept: frozenset[str] = field(default_factory=frozenset)  # other categories that also count as caught
    pct: Callable[[str, random.Random], str] | None = None  # percent-encoded form (None: the generic URL form)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset({self.category}) | self.accept


def _k(name: str, group: str, gen: Callable[[random.Random], str], env: str, **kw: object) -> Kind:
    return Kind(name, group, kw.pop("category", "secret"), gen, env, **kw)  # type: ignore[arg-type]


def _pct_uri_password(uri: str, rng: random.Random) -> str:
    """Give the URI's password characters that must be percent-encoded (@ : / #) and encode them."""
    scheme, rest = uri.split("://", 1)
    userinfo, host = rest.rsplit("@", 1)
    user, pw = userinfo.split(":", 1)
    i = rng.randrange(1, len(pw) - 1)
    raw = pw[:i] + rng.choice("@:/#?") + pw[i:] + rng.choice("@/%")
    return f"{scheme}://{user}:{quote(raw, safe='')}@{host}"


def _pg(rng: random.Random) -> str:
    scheme = rng.choice(["postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg"])
    host = rng.choice(["db.internal", "prod-db.c9akciq32.us-east-1.rds.amazonaws.com", "10.0.3.17", "pg-primary"])
    return f"{scheme}://{rng.choice(['app', 'postgres', 'svc_billing', 'admin'])}:{password(rng)}@{host}:5432/" \
        f"{rng.choice(['app', 'billing', 'analytics'])}" + rng.choice(["", "?sslmode=require"])


def _mysql(rng: random.Random) -> str:
    scheme = rng.choice(["mysql", "mysql+pymysql", "mariadb"])
    return f"{scheme}://{rng.choice(['root', 'shop', 'wp_user'])}:{password(rng)}@" \
        f"{rng.choice(['mysql.internal', '10.1.4.22', 'shop-db.abc123.eu-west-1.rds.amazonaws.com'])}:3306/shop"


def _mongo(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"mongodb+srv://{rng.choice(['app', 'atlasAdmin', 'reporting'])}:{password(rng)}@cluster0." \
            f"{rs(rng, LOWER_ALNUM, 5)}.mongodb.net/{rng.choice(['prod', 'events'])}?retryWrites=true&w=majority"
    return f"mongodb://{rng.choice(['root', 'svc'])}:{password(rng)}@mongo-0.mongo:27017,mongo-1.mongo:27017/admin" \
        "?replicaSet=rs0"


def _redis(rng: random.Random) -> str:
    return rng.choice([
        f"redis://:{password(rng)}@cache.internal:6379/0",
        f"rediss://default:{password(rng)}@{rs(rng, LOWER_ALNUM, 8)}.upstash.io:6379",
        f"redis://app:{password(rng)}@10.0.8.5:6380/2",
    ])


def _amqp(rng: random.Random) -> str:
    return rng.choice([
        f"amqp://{rng.choice(['guest2', 'worker', 'orders'])}:{password(rng)}@rabbitmq.internal:5672/%2F",
        f"amqps://{rs(rng, LOWER, 8)}:{password(rng)}@{rng.choice(['goose', 'hawk'])}.rmq.cloudamqp.com/"
        f"{rs(rng, LOWER, 8)}",
    ])


def _mssql(rng: random.Random) -> str:
    return f"mssql+pyodbc://{rng.choice(['sa', 'reporting'])}:{password(rng)}@sql01.corp.local:1433/Sales" \
        "?driver=ODBC+Driver+18+for+SQL+Server"


def _jdbc(rng: random.Random) -> str:
    return rng.choice([
        f"jdbc:sqlserver://sql01.corp.local:1433;databaseName=Sales;user=reporting;password={password(rng)};"
        "encrypt=true",
        f"jdbc:postgresql://db.internal:5432/app?user=app&password={password(rng)}&ssl=true",
        f"jdbc:mysql://mysql.internal:3306/shop?user=shop&password={password(rng)}",
    ])


def _adonet(rng: random.Random) -> str:
    return rng.choice([
        f"Server=tcp:acme-sql.database.windows.net,1433;Initial Catalog=orders;User ID=orders_app;"
        f"Password={password(rng)};Encrypt=True;",
        f"Data Source=sql01;Initial Catalog=Sales;User Id=reporting;Password={password(rng)};",
    ])


def _url_creds(rng: random.Random) -> str:
    return rng.choice([
        f"https://{rng.choice(['deploy', 'ci-bot', 'jenkins'])}:{password(rng)}@git.corp.example-internal.net/"
        "platform/infra.git",
        f"https://admin:{password(rng)}@grafana.ops.internal/api/dashboards",
        f"ftp://backup:{password(rng)}@files.acme-hosting.net/nightly/",
        f"https://{rs(rng, LOWER, 6)}:{password(rng)}@artifactory.corp.local/artifactory/api/pypi/simple",
    ])


def _azure_storage(rng: random.Random) -> str:
    key = base64.b64encode(km.rand_bytes(rng, 64)).decode()
    return f"DefaultEndpointsProtocol=https;AccountName={rs(rng, LOWER_ALNUM, 12)};AccountKey={key};" \
        "EndpointSuffix=core.windows.net"


def _azure_sas(rng: random.Random) -> str:
    sig = quote(base64.b64encode(km.rand_bytes(rng, 32)).decode(), safe="")
    return f"https://{rs(rng, LOWER_ALNUM, 10)}.blob.core.windows.net/backups?sv=2022-11-02&ss=bfqt&srt=sco" \
        f"&sp=rwdlacupiytfx&se=2025-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}"


def _sentry_org(rng: random.Random) -> str:
    """Sentry org auth token: sntrys_ + standard base64 of a JSON payload + _ + base64 of 32 random bytes."""
    payload = {"iat": 1_700_000_000 + rng.randrange(10**7) + rng.randrange(10**6) / 10**6, "url": "https://sentry.io",
               "region_url": "https://us.sentry.io", "org": rng.choice(["acme", "northwind", "globex-eu"])}
    secret = base64.b64encode(km.rand_bytes(rng, 32)).decode().rstrip("=")
    return "sntrys_" + base64.b64encode(json.dumps(payload).encode()).decode() + "_" + secret


def _grafana_cloud(rng: random.Random) -> str:
    payload = {"o": digits(rng, 6), "n": f"stack-{digits(rng, 6)}-hm-read-{rs(rng, LOWER, 6)}",
               "k": rs(rng, ALNUM, 24), "m": {"r": rng.choice(["prod-us-east-0", "prod-eu-west-2"])}}
    return "glc_" + base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _grafana_legacy(rng: random.Random) -> str:
    payload = {"k": rs(rng, ALNUM, 32), "n": rng.choice(["ci", "terraform"]), "id": rng.randrange(1, 50)}
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _mapbox(rng: random.Random) -> str:
    payload = {"u": rng.choice(["acme-maps", "jdoe"]), "a": rs(rng, LOWER_ALNUM, 25)}
    return "sk." + b64url_nopad(json.dumps(payload, separators=(",", ":")).encode()) + "." + rs(rng, B64URL, 22)


def _onepassword(rng: random.Random) -> str:
    payload = {"signInAddress": "my.1password.com", "userAuth": {"method": "SRPg-4096", "alg": "PBES2g-HS256",
               "iterations": 650000, "salt": rs(rng, B64URL, 22)}, "email": f"{rs(rng, LOWER, 12)}@1passwordserviceaccounts.com",
               "srpX": rs(rng, HEX, 64), "muk": {"alg": "A256GCM", "ext": True, "k": rs(rng, B64URL, 43),
               "key_ops": ["encrypt", "decrypt"], "kty": "oct", "kid": "mp"}, "secretKey": "A3-" + rs(rng, UPPER_ALNUM, 6),
               "throttleSecret": {"seed": rs(rng, HEX, 64), "uuid": rs(rng, UPPER_ALNUM, 26)},
               "deviceUuid": rs(rng, LOWER_ALNUM, 26)}
    return "ops_" + b64url_nopad(json.dumps(payload, separators=(",", ":")).encode())


def _discord_bot(rng: random.Random) -> str:
    uid = digits(rng, rng.choice([17, 18, 19]))
    return b64url_nopad(uid.encode()) + "." + rs(rng, B64URL, 6) + "." + rs(rng, B64URL, rng.choice([27, 38]))


def _twitter_bearer(rng: random.Random) -> str:
    """X/Twitter app-only bearer token: URL-encoded base64 starting with a run of A's, ~110 characters."""
    body = list(rs(rng, ALNUM, 88))
    for _ in range(rng.randrange(1, 4)):
        body.insert(rng.randrange(len(body)), rng.choice(["%2B", "%2F"]))
    body.insert(rng.randrange(40, 60), "%3D")
    return "A" * rng.choice([21, 22]) + rng.choice(UPPER) + "".join(body)


def _aws_session(rng: random.Random) -> str:
    return rng.choice(["IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE"]) + rs(rng, B64, rng.randrange(380, 760)) + \
        rng.choice(["", "=", "=="])


def _k8s_sa_token(rng: random.Random) -> str:
    return jwt(rng, {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "prod",
                     "kubernetes.io/serviceaccount/secret.name": f"deployer-token-{rs(rng, LOWER_ALNUM, 5)}",
                     "kubernetes.io/serviceaccount/service-account.name": "deployer",
                     "sub": "system:serviceaccount:prod:deployer"})


# -- file contents ------------------------------------------------------------------------------------------


def _dotenv_file(rng: random.Random) -> str:
    lines = ["NODE_ENV=production", f"PORT={rng.choice([3000, 8080, 8000])}", "LOG_LEVEL=info"]
    secrets = [
        f"DATABASE_URL={_pg(rng)}",
        f"STRIPE_SECRET_KEY=sk_live_{rs(rng, ALNUM, 24)}",
        f"JWT_SECRET={rs(rng, B64URL, 48)}",
        f"SESSION_SECRET={rs(rng, HEX, 64)}",
        f"AWS_ACCESS_KEY_ID=AKIA{rs(rng, BASE32, 16)}",
        f"AWS_SECRET_ACCESS_KEY={rs(rng, B64, 40)}",
        f"SENDGRID_API_KEY=SG.{rs(rng, B64URL, 22)}.{rs(rng, B64URL, 43)}",
        f"OPENAI_API_KEY=sk-proj-{rs(rng, B64URL, 64)}T3BlbkFJ{rs(rng, B64URL, 64)}",
        f"REDIS_PASSWORD={password(rng)}",
    ]
    chosen = rng.sample(secrets, rng.randrange(2, 5))
    body = lines + chosen
    rng.shuffle(body)
    return "\n".join(body) + "\n"


def _aws_credentials_file(rng: random.Random) -> str:
    out = []
    for profile in rng.sample(["default", "prod", "staging", "ci"], rng.randrange(1, 3)):
        out.append(f"[{profile}]\naws_access_key_id = {rng.choice(['AKIA', 'ASIA'])}{rs(rng, BASE32, 16)}\n"
                   f"aws_secret_access_key = {rs(rng, B64, 40)}\n" + rng.choice(["", "region = us-east-1\n"]))
    return "\n".join(out)


def _kubeconfig(rng: random.Random, token: bool) -> str:
    ca = base64.b64encode(km.certificate_pem(rng).encode()).decode()
    server = rng.choice(["https://10.0.0.1:6443", f"https://{rs(rng, HEXU, 32)}.gr7.us-east-1.eks.amazonaws.com"])
    if token:
        user = f"    token: {_k8s_sa_token(rng)}\n"
    else:
        cert = base64.b64encode(km.certificate_pem(rng).encode()).decode()
        key = base64.b64encode(km.any_private_pem(rng).encode()).decode()
        user = f"    client-certificate-data: {cert}\n    client-key-data: {key}\n"
    return ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
            f"    certificate-authority-data: {ca}\n    server: {server}\n  name: prod\n"
            "contexts:\n- context:\n    cluster: prod\n    user: admin\n  name: prod\ncurrent-context: prod\n"
            f"users:\n- name: admin\n  user:\n{user}")


def _k8s_secret(rng: random.Random) -> str:
    def enc(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    return ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\n  namespace: prod\ntype: Opaque\n"
            f"data:\n  username: {enc(rng.choice(['app', 'billing']))}\n  password: {enc(password(rng))}\n"
            f"  api-token: {enc(rs(rng, B64URL, 40))}\n")


def _npmrc(rng: random.Random) -> str:
    return rng.choice([
        f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={crc_token('npm_', rng)}\n",
        f"@acme:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={crc_token('ghp_', rng)}\n"
        "always-auth=true\n",
        f"registry=https://artifactory.corp.local/api/npm/npm/\n_auth="
        f"{base64.b64encode(f'ci-bot:{password(rng)}'.encode()).decode()}\nemail=ci-bot@corp.local\nalways-auth=true\n",
    ])


def _pypirc(rng: random.Random) -> str:
    token = "pypi-" + b64url_nopad(b"\x02\x01\x08pypi.org\x02\x25\x08\x01\x12 " + km.rand_bytes(rng, 96))
    return rng.choice([
        f"[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\npassword = {token}\n",
        f"[distutils]\nindex-servers =\n    internal\n\n[internal]\nrepository = https://pypi.corp.local/\n"
        f"username = deploy\npassword = {password(rng)}\n",
    ])


def _netrc(rng: random.Random) -> str:
    return rng.choice([
        f"machine api.heroku.com\n  login {email(rng)}\n  password {uuid4(rng)}\nmachine git.heroku.com\n"
        f"  login {email(rng)}\n  password {uuid4(rng)}\n",
        f"machine github.com login ci-bot password {crc_token('ghp_', rng)}\n",
        f"machine ftp.acme-hosting.net\nlogin backup\npassword {password(rng)}\n",
    ])


def _git_credentials(rng: random.Random) -> str:
    lines = [f"https://{rng.choice(['jdoe', 'ci-bot'])}:{crc_token('ghp_', rng)}@github.com",
             f"https://oauth2:glpat-{rs(rng, B64URL, 20)}@gitlab.com",
             f"https://deploy:{password(rng)}@bitbucket.org"]
    return "\n".join(rng.sample(lines, rng.randrange(1, 3))) + "\n"


def _pgpass(rng: random.Random) -> str:
    lines = [f"db.internal:5432:app:app:{password(rng)}", f"*:*:*:replicator:{password(rng)}",
             f"prod-db.c9akciq32.us-east-1.rds.amazonaws.com:5432:billing:svc_billing:{password(rng)}"]
    return "\n".join(rng.sample(lines, rng.randrange(1, 3))) + "\n"


def _docker_config(rng: random.Random) -> str:
    auths = {}
    for reg in rng.sample(["https://index.docker.io/v1/", "ghcr.io", "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                           "registry.gitlab.com"], rng.randrange(1, 3)):
        user = rng.choice(["ci-bot", "jdoe", "AWS", "deploy"])
        auths[reg] = {"auth": base64.b64encode(f"{user}:{password(rng, 24)}".encode()).decode()}
    return json.dumps({"auths": auths, "credsStore": ""}, indent=2) if rng.random() < 0.3 else \
        json.dumps({"auths": auths}, indent="\t")


def _gcp_sa(rng: random.Random) -> str:
    project = f"{rng.choice(['acme', 'northwind', 'globex'])}-{rng.choice(['prod', 'data', 'ml'])}-{digits(rng, 6)}"
    sa = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": rs(rng, HEX, 40),
        "private_key": km.pem("PRIVATE KEY", km.seq(km.integer(0), km.seq(km.oid("1.2.840.113549.1.1.1"), km.NULL),
                                                  km.octets(km.rsa_pkcs1_der(rng, 2048)))) + "\n",
        "client_email": f"{rng.choice(['deployer', 'terraform', 'etl-runner'])}@{project}.iam.gserviceaccount.com",
        "client_id": digits(rng, 21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/deployer%40{project}"
                                ".iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    }
    return json.dumps(sa, indent=2)


def _password_hashes(rng: random.Random) -> str:
    salt = rs(rng, ALNUM + "./", 16)
    return rng.choice([
        f"root:$6${salt}${rs(rng, ALNUM + './', 86)}:19700:0:99999:7:::\n"
        f"daemon:*:19700:0:99999:7:::\ndeploy:$6${rs(rng, ALNUM + './', 8)}${rs(rng, ALNUM + './', 86)}:19701:0:99999:7:::\n",
        f"admin:$apr1${rs(rng, ALNUM, 8)}${rs(rng, ALNUM + './', 22)}\n"
        f"metrics:$2y$10${rs(rng, ALNUM + './', 53)}\n",
    ])


# -- tool reads (value: the path the agent's tool opens) -----------------------------------------------------


def _choice(*items: str) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(items)


# -- the catalogue --------------------------------------------------------------------------------------------

SECRET_PROSE = (
    "The deploy job broke after I rotated the credential. The new one is {v} — can you update the workflow?",
    "use {v} for staging, the old one was revoked",
    "why does this return 401?\ncurl -s https://api.internal.dev/v2/status -H 'Authorization: Bearer {v}'",
)
CONTEXT_PROSE = (
    "I set {env}={v} in the CI variables but the job still gets 403.",
    "here is my config:\n{env}: {v}\nregion: us-east-1",
    "The container starts with `-e {env}={v}` and then crashes, see below.",
)


def _pk(name: str, gen: Callable[[random.Random], str], env: str = "PRIVATE_KEY") -> Kind:
    return Kind(name, "private-key", "secret", gen, env, multiline=True, accept=frozenset({"file"}))


def _conn(name: str, gen: Callable[[random.Random], str], env: str = "DATABASE_URL") -> Kind:
    return Kind(name, "connection-string", "secret", gen, env, pct=_pct_uri_password,
                prose=("the app can't connect, it uses {v} — is the port wrong?", "{env}={v}",
                       "connecting with `{v}` times out from the worker pod"))


def generic_value(rng: random.Random) -> str:
    """What teams put in secret-named settings: random alphanumerics, hex, base64, or a password with symbols."""
    style = rng.randrange(5)
    if style == 0:
        return rs(rng, ALNUM, rng.randrange(24, 49))
    if style == 1:
        return rs(rng, HEX, rng.choice([32, 40, 64]))
    if style == 2:
        return base64.b64encode(km.rand_bytes(rng, rng.choice([24, 32, 48]))).decode()
    if style == 3:
        return rs(rng, B64URL, rng.randrange(32, 49))
    return password(rng, rng.randrange(16, 33), "!#%*-_=+@$^&")


def _generic(name: str, render: str, env_names: tuple[str, ...]) -> Kind:
    """A high-entropy value assigned to a secret-named key in one syntax; `render` has {name} and {v}.
    A `file` finding (a dotenv block, say) on the value also counts: it blocks the same text."""
    return Kind(name, "generic", "secret", generic_value, "|".join(env_names), context=True, prose=(render,),
                accept=frozenset({"file"}))


def _file(name: str, gen: Callable[[random.Random], str], filename: str) -> Kind:
    return Kind(name, "file", "file", gen, "", multiline=True, filename=filename, accept=frozenset({"secret"}))


def _read(name: str, paths: tuple[str, ...]) -> Kind:
    return Kind(name, "tool-read", "file", _choice(*paths), "")


def _pii(name: str, gen: Callable[[random.Random], str], env: str, prose: tuple[str, ...]) -> Kind:
    return Kind(name, "pii", "pii", gen, env, prose=prose)


KINDS: tuple[Kind, ...] = (
    # cloud
    _k("aws-access-key-id", "cloud", lambda r: "AKIA" + rs(r, BASE32, 16), "AWS_ACCESS_KEY_ID"),
    _k("aws-temporary-access-key-id", "cloud", lambda r: "ASIA" + rs(r, BASE32, 16), "AWS_ACCESS_KEY_ID"),
    _k("aws-secret-access-key", "cloud", lambda r: rs(r, B64, 40), "AWS_SECRET_ACCESS_KEY", context=True),
    _k("aws-session-token", "cloud", _aws_session, "AWS_SESSION_TOKEN", context=True),
    _k("gcp-api-key", "cloud", lambda r: "AIza" + rs(r, B64URL, 35), "GOOGLE_API_KEY"),
    _k("gcp-oauth-client-secret", "cloud", lambda r: "GOCSPX-" + rs(r, B64URL, 28), "GOOGLE_CLIENT_SECRET"),
    _k("gcp-oauth-access-token", "cloud", lambda r: "ya29." + rs(r, B64URL, r.randrange(120, 200)),
       "GOOGLE_ACCESS_TOKEN"),
    _k("azure-storage-connection-string", "cloud", _azure_storage, "AZURE_STORAGE_CONNECTION_STRING"),
    _k("azure-sas-url", "cloud", _azure_sas, "BACKUP_CONTAINER_URL"),
    _k("azure-ad-client-secret", "cloud",
       lambda r: rs(r, ALNUM, 3) + r.choice(DIGITS) + "Q~" + rs(r, ALNUM + "_~.-", 34), "AZURE_CLIENT_SECRET"),
    _k("azure-devops-pat", "cloud", lambda r: rs(r, "abcdefghijklmnopqrstuvwxyz234567", 52), "AZURE_DEVOPS_PAT",
       context=True),
    _k("digitalocean-pat", "cloud", lambda r: "dop_v1_" + rs(r, HEX, 64), "DIGITALOCEAN_TOKEN"),
    _k("digitalocean-oauth-token", "cloud", lambda r: "doo_v1_" + rs(r, HEX, 64), "DO_OAUTH_TOKEN"),
    _k("alibaba-access-key-id", "cloud", lambda r: "LTAI" + rs(r, ALNUM, r.choice([12, 16, 20])), "ALIBABA_CLOUD_ACCESS_KEY_ID"),
    _k("tencent-secret-id", "cloud", lambda r: "AKID" + rs(r, ALNUM, 32), "TENCENTCLOUD_SECRET_ID"),
    _k("cloudflare-api-token", "cloud", lambda r: rs(r, B64URL, 40), "CLOUDFLARE_API_TOKEN", context=True),
    _k("cloudflare-origin-ca-key", "cloud", lambda r: "v1.0-" + rs(r, HEX, 24) + "-" + rs(r, HEX, 146),
       "CF_ORIGIN_CA_KEY"),
    _k("vault-service-token", "cloud", lambda r: "hvs.CAESI" + rs(r, B64URL, 86), "VAULT_TOKEN"),
    _k("vault-batch-token", "cloud", lambda r: "hvb.AAAAAQ" + rs(r, B64URL, 130), "VAULT_TOKEN"),
    _k("terraform-cloud-token", "cloud", lambda r: rs(r, ALNUM, 14) + ".atlasv1." + rs(r, ALNUM, 67), "TFE_TOKEN"),
    _k("doppler-token", "cloud", lambda r: r.choice(["dp.pt.", "dp.st.prd."]) + rs(r, ALNUM, 43), "DOPPLER_TOKEN"),
    _k("pulumi-access-token", "cloud", lambda r: "pul-" + rs(r, HEX, 40), "PULUMI_ACCESS_TOKEN"),
    _k("heroku-api-key", "cloud", lambda r: "HRKU-AA" + rs(r, B64URL, 58), "HEROKU_API_KEY"),
    _k("flyio-token", "cloud", lambda r: "FlyV1 fm2_" + rs(r, B64, 320) + "==", "FLY_API_TOKEN"),
    # VCS / CI
    _k("github-pat", "vcs", lambda r: crc_token("ghp_", r), "GITHUB_TOKEN"),
    _k("github-oauth-token", "vcs", lambda r: crc_token("gho_", r), "GH_OAUTH_TOKEN"),
    _k("github-user-to-server-token", "vcs", lambda r: crc_token("ghu_", r), "GH_USER_TOKEN"),
    _k("github-app-installation-token", "vcs", lambda r: crc_token("ghs_", r), "GH_APP_TOKEN"),
    _k("github-fine-grained-pat", "vcs", lambda r: "github_pat_" + rs(r, ALNUM, 22) + "_" + rs(r, ALNUM, 59),
       "GITHUB_TOKEN"),
    _k("gitlab-pat", "vcs", lambda r: "glpat-" + rs(r, B64URL, 20), "GITLAB_TOKEN"),
    _k("gitlab-deploy-token", "vcs", lambda r: "gldt-" + rs(r, B64URL, 20), "GITLAB_DEPLOY_TOKEN"),
    _k("gitlab-runner-token", "vcs", lambda r: "glrt-" + rs(r, B64URL, 20), "RUNNER_TOKEN"),
    _k("gitlab-pipeline-trigger-token", "vcs", lambda r: "glptt-" + rs(r, HEX, 40), "TRIGGER_TOKEN"),
    _k("gitlab-runner-registration-token", "vcs", lambda r: "GR1348941" + rs(r, B64URL, 20), "REGISTRATION_TOKEN"),
    _k("bitbucket-app-password", "vcs", lambda r: "ATBB" + rs(r, ALNUM, 32), "BITBUCKET_APP_PASSWORD"),
    _k("atlassian-api-token", "vcs", lambda r: "ATATT3xFfGF0" + rs(r, B64URL, 170) + "=" + rs(r, HEXU, 8),
       "JIRA_API_TOKEN"),
    _k("buildkite-token", "vcs", lambda r: "bkua_" + rs(r, HEX, 40), "BUILDKITE_API_TOKEN"),
    _k("circleci-pat", "vcs", lambda r: "CCIPAT_" + rs(r, ALNUM, 22) + "_" + rs(r, HEX, 40), "CIRCLE_TOKEN"),
    _k("sonarqube-token", "vcs", lambda r: r.choice(["squ_", "sqp_", "sqa_"]) + rs(r, HEX, 40), "SONAR_TOKEN"),
    _k("sourcegraph-token", "vcs", lambda r: "sgp_" + rs(r, HEX, 16) + "_" + rs(r, HEX, 40), "SRC_ACCESS_TOKEN"),
    # registries
    _k("npm-token", "registry", lambda r: crc_token("npm_", r), "NPM_TOKEN"),
    _k("pypi-token", "registry", lambda r: "pypi-" + b64url_nopad(b"\x02\x01\x08pypi.org\x02\x25\x08\x01\x12 "
                                                                   + km.rand_bytes(r, r.randrange(90, 140))),
       "TWINE_PASSWORD"),
    _k("dockerhub-pat", "registry", lambda r: "dckr_pat_" + rs(r, B64URL, 27), "DOCKERHUB_TOKEN"),
    _k("rubygems-key", "registry", lambda r: "rubygems_" + rs(r, HEX, 48), "GEM_HOST_API_KEY"),
    _k("clojars-token", "registry", lambda r: "CLOJARS_" + rs(r, HEX, 60), "CLOJARS_PASSWORD"),
    _k("artifactory-api-key", "registry", lambda r: "AKCp" + r.choice("5678") + rs(r, ALNUM, 68), "ARTIFACTORY_API_KEY"),
    _k("nuget-api-key", "registry", lambda r: "oy2" + rs(r, LOWER_ALNUM, 43), "NUGET_API_KEY"),
    _k("crates-io-token", "registry", lambda r: "cio" + rs(r, ALNUM, 32), "CARGO_REGISTRY_TOKEN"),
    # chat and messaging
    _k("slack-bot-token", "chat", lambda r: f"xoxb-{digits(r, r.choice([11, 12, 13]))}-{digits(r, 13)}-{rs(r, ALNUM, 24)}",
       "SLACK_BOT_TOKEN"),
    _k("slack-user-token", "chat",
       lambda r: f"xoxp-{digits(r, 12)}-{digits(r, 12)}-{digits(r, 13)}-{rs(r, HEX, 32)}", "SLACK_USER_TOKEN"),
    _k("slack-app-token", "chat", lambda r: f"xapp-1-A{rs(r, UPPER_ALNUM, 10)}-{digits(r, 13)}-{rs(r, HEX, 64)}",
       "SLACK_APP_TOKEN"),
    _k("slack-webhook-url", "chat", lambda r: f"https://hooks.slack.com/services/T{rs(r, UPPER_ALNUM, 8)}/"
       f"B{rs(r, UPPER_ALNUM, 10)}/{rs(r, ALNUM, 24)}", "SLACK_WEBHOOK_URL"),
    _k("discord-bot-token", "chat", _discord_bot, "DISCORD_BOT_TOKEN"),
    _k("discord-webhook-url", "chat", lambda r: f"https://discord.com/api/webhooks/{digits(r, 19)}/{rs(r, B64URL, 68)}",
       "DISCORD_WEBHOOK"),
    _k("telegram-bot-token", "chat", lambda r: f"{digits(r, r.choice([9, 10]))}:AA{rs(r, B64URL, 33)}",
       "TELEGRAM_BOT_TOKEN"),
    _k("teams-incoming-webhook", "chat",
       lambda r: f"https://{r.choice(['acmecorp', 'northwind'])}.webhook.office.com/webhookb2/{uuid4(r)}@{uuid4(r)}"
       f"/IncomingWebhook/{rs(r, HEX, 32)}/{uuid4(r)}", "TEAMS_WEBHOOK_URL"),
    _k("twilio-api-key", "chat", lambda r: "SK" + rs(r, HEX, 32), "TWILIO_API_KEY"),
    _k("twilio-auth-token", "chat", lambda r: rs(r, HEX, 32), "TWILIO_AUTH_TOKEN", context=True),
    _k("sendgrid-api-key", "chat", lambda r: f"SG.{rs(r, B64URL, 22)}.{rs(r, B64URL, 43)}", "SENDGRID_API_KEY"),
    _k("mailgun-api-key", "chat", lambda r: "key-" + rs(r, HEX, 32), "MAILGUN_API_KEY"),
    _k("mailchimp-api-key", "chat", lambda r: rs(r, HEX, 32) + f"-us{r.randrange(1, 22)}", "MAILCHIMP_API_KEY"),
    _k("brevo-api-key", "chat", lambda r: "xkeysib-" + rs(r, HEX, 64) + "-" + rs(r, ALNUM, 16), "BREVO_API_KEY"),
    _k("resend-api-key", "chat", lambda r: "re_" + rs(r, ALNUM, 8) + "_" + rs(r, ALNUM, 24), "RESEND_API_KEY"),
    # payment
    _k("stripe-live-secret-key", "payment", lambda r: "sk_live_" + r.choice(["", "51"]) + rs(r, ALNUM, r.choice([24, 60, 97])),
       "STRIPE_SECRET_KEY"),
    _k("stripe-restricted-key", "payment", lambda r: "rk_live_" + r.choice(["", "51"]) + rs(r, ALNUM, r.choice([24, 60, 97])),
       "STRIPE_RESTRICTED_KEY"),
    _k("stripe-webhook-secret", "payment", lambda r: "whsec_" + rs(r, ALNUM, 32), "STRIPE_WEBHOOK_SECRET"),
    _k("square-access-token", "payment", lambda r: r.choice(["EAAA" + rs(r, B64URL, 60), "sq0atp-" + rs(r, B64URL, 22)]),
       "SQUARE_ACCESS_TOKEN"),
    _k("square-oauth-secret", "payment", lambda r: "sq0csp-" + rs(r, B64URL, 43), "SQUARE_OAUTH_SECRET"),
    _k("braintree-access-token", "payment",
       lambda r: f"access_token$production${rs(r, LOWER_ALNUM, 16)}${rs(r, HEX, 32)}", "BRAINTREE_ACCESS_TOKEN"),
    _k("shopify-access-token", "payment", lambda r: r.choice(["shpat_", "shpca_", "shppa_"]) + rs(r, HEX, 32),
       "SHOPIFY_ACCESS_TOKEN"),
    _k("shopify-shared-secret", "payment", lambda r: "shpss_" + rs(r, HEX, 32), "SHOPIFY_API_SECRET"),
    _k("shippo-live-token", "payment", lambda r: "shippo_live_" + rs(r, HEX, 40), "SHIPPO_API_TOKEN"),
    _k("easypost-api-key", "payment", lambda r: "EZAK" + rs(r, ALNUM, 54), "EASYPOST_API_KEY"),
    # LLM providers
    _k("openai-project-key", "llm", lambda r: "sk-proj-" + rs(r, B64URL, r.randrange(58, 75)) + "T3BlbkFJ"
       + rs(r, B64URL, r.randrange(58, 75)), "OPENAI_API_KEY"),
    _k("openai-legacy-key", "llm", lambda r: "sk-" + rs(r, ALNUM, 20) + "T3BlbkFJ" + rs(r, ALNUM, 20), "OPENAI_API_KEY"),
    _k("openai-service-account-key", "llm", lambda r: "sk-svcacct-" + rs(r, B64URL, 74) + "T3BlbkFJ" + rs(r, B64URL, 74),
       "OPENAI_API_KEY"),
    _k("openai-admin-key", "llm", lambda r: "sk-admin-" + rs(r, B64URL, 58) + "T3BlbkFJ" + rs(r, B64URL, 58),
       "OPENAI_ADMIN_KEY"),
    _k("anthropic-api-key", "llm", lambda r: "sk-ant-api03-" + rs(r, B64URL, 93) + "AA", "ANTHROPIC_API_KEY"),
    _k("anthropic-admin-key", "llm", lambda r: "sk-ant-admin01-" + rs(r, B64URL, 93) + "AA", "ANTHROPIC_ADMIN_KEY"),
    _k("anthropic-oauth-token", "llm", lambda r: "sk-ant-oat01-" + rs(r, B64URL, 93) + "AA", "CLAUDE_CODE_OAUTH_TOKEN"),
    _k("groq-api-key", "llm", lambda r: "gsk_" + rs(r, ALNUM, 52), "GROQ_API_KEY"),
    _k("huggingface-token", "llm", lambda r: "hf_" + rs(r, UPPER + LOWER, 34), "HF_TOKEN"),
    _k("replicate-api-token", "llm", lambda r: "r8_" + rs(r, ALNUM, 37), "REPLICATE_API_TOKEN"),
    _k("perplexity-api-key", "llm", lambda r: "pplx-" + rs(r, ALNUM, 48), "PERPLEXITY_API_KEY"),
    _k("xai-api-key", "llm", lambda r: "xai-" + rs(r, ALNUM, 80), "XAI_API_KEY"),
    _k("openrouter-api-key", "llm", lambda r: "sk-or-v1-" + rs(r, HEX, 64), "OPENROUTER_API_KEY"),
    _k("langsmith-api-key", "llm", lambda r: r.choice(["lsv2_pt_", "lsv2_sk_"]) + rs(r, HEX, 32) + "_" + rs(r, HEX, 10),
       "LANGSMITH_API_KEY"),
    _k("tavily-api-key", "llm", lambda r: "tvly-" + r.choice(["", "dev-"]) + rs(r, ALNUM, 32), "TAVILY_API_KEY"),
    _k("pinecone-api-key", "llm", lambda r: "pcsk_" + rs(r, ALNUM, 6) + "_" + rs(r, ALNUM, 64), "PINECONE_API_KEY"),
    _k("deepseek-api-key", "llm", lambda r: "sk-" + rs(r, HEX, 32), "DEEPSEEK_API_KEY", context=True),
    _k("mistral-api-key", "llm", lambda r: rs(r, ALNUM, 32), "MISTRAL_API_KEY", context=True),
    _k("cohere-api-key", "llm", lambda r: rs(r, ALNUM, 40), "COHERE_API_KEY", context=True),
    _k("fireworks-api-key", "llm", lambda r: "fw_" + rs(r, ALNUM, 24), "FIREWORKS_API_KEY"),
    # observability
    _k("datadog-api-key", "observability", lambda r: rs(r, HEX, 32), "DD_API_KEY", context=True),
    _k("datadog-app-key", "observability", lambda r: rs(r, HEX, 40), "DD_APP_KEY", context=True),
    _k("newrelic-user-api-key", "observability", lambda r: "NRAK-" + rs(r, UPPER_ALNUM, 27), "NEW_RELIC_API_KEY"),
    _k("newrelic-insert-key", "observability", lambda r: "NRII-" + rs(r, B64URL, 32), "NEW_RELIC_INSERT_KEY"),
    _k("newrelic-license-key", "observability", lambda r: rs(r, HEX, 36) + "NRAL", "NEW_RELIC_LICENSE_KEY"),
    _k("newrelic-browser-key", "observability", lambda r: "NRJS-" + rs(r, HEX, 19), "NEW_RELIC_BROWSER_KEY"),
    _k("sentry-user-token", "observability", lambda r: "sntryu_" + rs(r, HEX, 64), "SENTRY_AUTH_TOKEN"),
    _k("sentry-org-token", "observability", _sentry_org, "SENTRY_AUTH_TOKEN"),
    _k("grafana-service-account-token", "observability", lambda r: "glsa_" + rs(r, ALNUM, 32) + "_" + rs(r, HEX, 8),
       "GRAFANA_TOKEN"),
    _k("grafana-cloud-token", "observability", _grafana_cloud, "GRAFANA_CLOUD_TOKEN"),
    _k("grafana-legacy-api-key", "observability", _grafana_legacy, "GRAFANA_API_KEY"),
    _k("dynatrace-api-token", "observability", lambda r: "dt0c01." + rs(r, UPPER_ALNUM, 24) + "." + rs(r, UPPER_ALNUM, 64),
       "DT_API_TOKEN"),
    # Server SDK keys only: a bare `api-<uuid>` access token is indistinguishable from an ordinary id without
    # a LaunchDarkly name nearby, and some placements here carry no name.
    _k("launchdarkly-sdk-key", "observability", lambda r: "sdk-" + uuid4(r), "LAUNCHDARKLY_SDK_KEY"),
    # SaaS
    _k("linear-api-key", "saas", lambda r: "lin_api_" + rs(r, ALNUM, 40), "LINEAR_API_KEY"),
    _k("notion-token", "saas", lambda r: r.choice(["secret_" + rs(r, ALNUM, 43), "ntn_" + digits(r, 11) + rs(r, ALNUM, 35)]),
       "NOTION_TOKEN"),
    _k("airtable-pat", "saas", lambda r: "pat" + rs(r, ALNUM, 14) + "." + rs(r, HEX, 64), "AIRTABLE_TOKEN"),
    _k("figma-pat", "saas", lambda r: "figd_" + rs(r, B64URL, 40), "FIGMA_TOKEN"),
    _k("postman-api-key", "saas", lambda r: "PMAK-" + rs(r, HEX, 24) + "-" + rs(r, HEX, 34), "POSTMAN_API_KEY"),
    _k("hubspot-private-app-token", "saas", lambda r: f"pat-{r.choice(['na1', 'eu1'])}-{uuid4(r)}", "HUBSPOT_TOKEN"),
    _k("okta-api-token", "saas", lambda r: "00" + rs(r, B64URL, 40), "OKTA_API_TOKEN", context=True),
    _k("netlify-token", "saas", lambda r: "nfp_" + rs(r, ALNUM, 36), "NETLIFY_AUTH_TOKEN"),
    _k("vercel-token", "saas", lambda r: rs(r, ALNUM, 24), "VERCEL_TOKEN", context=True),
    _k("supabase-access-token", "saas", lambda r: "sbp_" + rs(r, HEX, 40), "SUPABASE_ACCESS_TOKEN"),
    _k("supabase-secret-key", "saas", lambda r: "sb_secret_" + rs(r, B64URL, 31), "SUPABASE_SECRET_KEY"),
    _k("planetscale-token", "saas", lambda r: r.choice(["pscale_tkn_", "pscale_pw_", "pscale_oauth_"]) + rs(r, B64URL, 43),
       "PLANETSCALE_TOKEN"),
    _k("databricks-token", "saas", lambda r: "dapi" + rs(r, HEX, 32) + r.choice(["", "-2", "-3"]), "DATABRICKS_TOKEN"),
    _k("mapbox-secret-token", "saas", _mapbox, "MAPBOX_SECRET_TOKEN"),
    _k("age-secret-key", "saas", lambda r: "AGE-SECRET-KEY-1" + rs(r, BECH32, 58), "SOPS_AGE_KEY"),
    _k("onepassword-service-account-token", "saas", _onepassword, "OP_SERVICE_ACCOUNT_TOKEN"),
    _k("contentful-pat", "saas", lambda r: "CFPAT-" + rs(r, B64URL, 43), "CONTENTFUL_MANAGEMENT_TOKEN"),
    _k("prefect-api-key", "saas", lambda r: "pnu_" + rs(r, ALNUM, 36), "PREFECT_API_KEY"),
    _k("readme-api-key", "saas", lambda r: "rdme_" + rs(r, LOWER_ALNUM, 70), "README_API_KEY"),
    _k("infracost-api-key", "saas", lambda r: "ico-" + rs(r, ALNUM, 32), "INFRACOST_API_KEY"),
    _k("neon-api-key", "saas", lambda r: "napi_" + rs(r, LOWER_ALNUM, 64), "NEON_API_KEY"),
    _k("render-api-key", "saas", lambda r: "rnd_" + rs(r, ALNUM, 32), "RENDER_API_KEY"),
    _k("firebase-fcm-server-key", "saas", lambda r: "AAAA" + rs(r, B64URL, 7) + ":APA91b" + rs(r, B64URL, 134),
       "FCM_SERVER_KEY"),
    _k("openshift-token", "saas", lambda r: "sha256~" + rs(r, B64URL, 43), "OPENSHIFT_TOKEN"),
    _k("twitter-bearer-token", "saas", _twitter_bearer, "TWITTER_BEARER_TOKEN"),
    _k("facebook-access-token", "saas", lambda r: "EAA" + r.choice(["G", "B", "Cw"]) + rs(r, ALNUM, r.randrange(150, 200)),
       "FB_ACCESS_TOKEN"),
    # bearer tokens and HTTP credentials
    _k("jwt", "token", jwt, "ACCESS_TOKEN"),
    _k("authorization-bearer-opaque", "token", lambda r: rs(r, B64URL, r.randrange(32, 65)), "Authorization",
       context=True, prose=("curl https://api.vendor-internal.io/v3/orders -H 'Authorization: Bearer {v}'",
                            "request headers: {{'Authorization': 'Bearer {v}', 'Accept': 'application/json'}}",
                            "Authorization: Bearer {v}")),
    _k("authorization-basic", "token", lambda r: base64.b64encode(f"{r.choice(['admin', 'svc-reports', 'ci'])}:"
                                                                  f"{password(r)}".encode()).decode(), "Authorization",
       context=True, prose=("curl -H 'Authorization: Basic {v}' https://jenkins.corp.local/api/json",
                            "Authorization: Basic {v}",
                            "headers = {{\"Authorization\": \"Basic {v}\"}}")),
    _k("curl-user-credentials", "token", lambda r: f"{r.choice(['admin', 'deploy', 'elastic'])}:{password(r)}", "curl",
       context=True, prose=("curl -u {v} https://es.internal:9200/_cat/indices",
                            "curl --user {v} -X POST https://jenkins.corp.local/job/deploy/build",
                            "run `curl -su {v} https://nexus.corp.local/service/rest/v1/status`")),
    # private keys
    _pk("private-key-rsa", km.rsa_private_pem),
    _pk("private-key-rsa-encrypted-legacy", km.rsa_encrypted_legacy_pem),
    _pk("private-key-pkcs8", km.pkcs8_pem),
    _pk("private-key-ec", km.ec_private_pem),
    _pk("private-key-dsa", km.dsa_private_pem),
    _pk("private-key-openssh", km.openssh_private_pem, "SSH_PRIVATE_KEY"),
    _pk("private-key-pkcs8-encrypted", km.encrypted_pkcs8_pem),
    _pk("private-key-pgp", km.pgp_private_block, "GPG_PRIVATE_KEY"),
    _pk("private-key-putty", km.putty_private_key, "PPK"),
    _pk("private-key-ssh2", km.ssh2_private_key, "SSH_PRIVATE_KEY"),
    # connection strings
    _conn("postgres-uri", _pg),
    _conn("mysql-uri", _mysql),
    _conn("mongodb-uri", _mongo, "MONGODB_URI"),
    _conn("redis-uri", _redis, "REDIS_URL"),
    _conn("amqp-uri", _amqp, "BROKER_URL"),
    _conn("mssql-uri", _mssql, "SQLALCHEMY_DATABASE_URI"),
    Kind("jdbc-url-password", "connection-string", "secret", _jdbc, "JDBC_URL"),
    Kind("adonet-connection-string", "connection-string", "secret", _adonet, "ConnectionStrings__Default"),
    _conn("url-embedded-credentials", _url_creds, "REMOTE_URL"),
    # generic secret-named assignments: one kind per syntax
    _generic("generic-dotenv", "{name}={v}", ("SECRET_KEY", "APP_SECRET", "DB_PASSWORD", "SIGNING_SECRET",
                                             "INTERNAL_API_TOKEN")),
    _generic("generic-yaml", "{name}: \"{v}\"", ("client_secret", "api_token", "password", "secret_key",
                                                "webhook_secret")),
    _generic("generic-json", "\"{name}\": \"{v}\"", ("clientSecret", "apiKey", "password", "accessToken",
                                                   "signingSecret")),
    _generic("generic-toml", "{name} = \"{v}\"", ("password", "api_key", "secret", "auth_token", "private_token")),
    _generic("generic-python", "{name} = \"{v}\"", ("SECRET_KEY", "API_TOKEN", "DB_PASSWORD", "client_secret",
                                                   "ENCRYPTION_KEY")),
    _generic("generic-js", "const {name} = '{v}';", ("apiSecret", "authToken", "dbPassword", "clientSecret",
                                                    "privateToken")),
    _generic("generic-shell", "export {name}=\"{v}\"", ("API_SECRET", "ADMIN_PASSWORD", "AUTH_TOKEN",
                                                       "MASTER_KEY", "SERVICE_TOKEN")),
    # PII
    _pii("email-address", email, "email", ("Can you add {v} to the on-call rotation and send the invite?",
                                           "Contact: Priya Natarajan <{v}>, she owns the billing service.",
                                           "reply-to {v} once the migration is done")),
    _pii("phone-nanp", nanp_phone, "phone", ("The customer called from {v} about the outage.",
                                            "phone: {v}", "ping me on {v} if the deploy fails")),
    _pii("phone-e164", e164_phone, "mobile", ("WhatsApp me at {v} when it's merged.",
                                              "mobile: {v}", "The SMS to {v} bounced with error 30003.")),
    _pii("us-ssn", ssn, "ssn", ("Employee SSN {v} failed validation in the payroll import.", "ssn: {v}",
                                "row 17 has social security number {v} and the wrong birth date")),
    *[_pii(f"card-{b}", card(b), "card_number", ("The charge on card {v} (exp 11/27) was declined twice.",
                                                 "card_number: {v}", "customer paid with {v}, refund it")) for b in CARD_BRANDS],
    _pii("iban", iban, "iban", ("Wire the refund to IBAN {v} (beneficiary: Müller GmbH).", "iban: {v}",
                                "payout account {v} was rejected by the bank")),
    # restricted file contents
    _file("dotenv-file", _dotenv_file, ".env"),
    _file("aws-credentials-file", _aws_credentials_file, "~/.aws/credentials"),
    _file("kubeconfig-client-key", lambda r: _kubeconfig(r, token=False), "~/.kube/config"),
    _file("kubeconfig-token", lambda r: _kubeconfig(r, token=True), "~/.kube/config"),
    _file("kubernetes-secret-manifest", _k8s_secret, "k8s/db-secret.yaml"),
    _file("npmrc", _npmrc, ".npmrc"),
    _file("pypirc", _pypirc, "~/.pypirc"),
    _file("netrc", _netrc, "~/.netrc"),
    _file("git-credentials", _git_credentials, "~/.git-credentials"),
    _file("pgpass", _pgpass, "~/.pgpass"),
    _file("docker-config-json", _docker_config, "~/.docker/config.json"),
    _file("gcp-service-account-json", _gcp_sa, "service-account.json"),
    _file("password-hash-file", _password_hashes, "/etc/shadow"),
    # tool calls that read secret files
    _read("read-dotenv", (".env", ".env.local", ".env.production", "apps/api/.env", "/srv/app/.env")),
    _read("read-ssh-private-key", ("~/.ssh/id_rsa", "~/.ssh/id_ed25519", "/home/dev/.ssh/id_ecdsa", "/root/.ssh/id_rsa")),
    _read("read-pem-file", ("certs/server.key", "deploy/private.pem", "secrets/tls.key", "config/jwt-private.pem",
                            "/etc/ssl/private/api.pem")),
    _read("read-cloud-credentials", ("~/.aws/credentials", "credentials.json", "service-account.json",
                                     "~/.config/gcloud/application_default_credentials.json",
                                     "~/.azure/msal_token_cache.json")),
    _read("read-auth-config", ("~/.npmrc", "~/.pypirc", "~/.netrc", "~/.docker/config.json", "~/.git-credentials",
                               "~/.kube/config", "~/.pgpass")),
    _read("read-system-secret", ("/etc/shadow", "/var/run/secrets/kubernetes.io/serviceaccount/token",
                                 "/etc/ssl/private/ssl-cert-snakeoil.key")),
)

KIND_BY_NAME = {k.name: k for k in KINDS}
assert len(KIND_BY_NAME) == len(KINDS), "duplicate kind names"
