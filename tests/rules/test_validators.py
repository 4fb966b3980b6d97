"""Post-match validators: one focused test each, with values that must pass and values that must not."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest

from filter.rules import validators as v

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def b62(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(6, "0")


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_every_named_validator_is_registered() -> None:
    assert set(v.NAMED) >= {
        "luhn", "iban", "github_checksum", "crc32_base62", "jwt", "ssn", "has_digit", "has_letter_and_digit",
        "not_placeholder", "known_checksum", "basic_auth", "discord_bot_token", "nanp_phone", "e164_phone", "email",
        "password_like", "token_like", "not_identifier",
    }  # fmt: skip
    assert set(v.PARAMETRIZED) == {"entropy"}


def test_entropy() -> None:
    check = v.PARAMETRIZED["entropy"](3.5)
    assert check("h7Gk2LmQ9pXz4VbN")
    assert not check("aaaaaaaaaaaaaaaa")
    assert not check("abababababababab")
    assert v.shannon_entropy("") == 0.0
    assert v.shannon_entropy("ab") == 1.0


def test_luhn() -> None:
    assert v.luhn("4539 1488 0343 6467")
    assert v.luhn("4539-1488-0343-6467")
    assert v.luhn("378282246310005")
    assert not v.luhn("4539 1488 0343 6468")
    assert not v.luhn("0000 0000 0000 0000")  # one repeated digit
    assert not v.luhn("42")  # too short for a card
    assert not v.luhn("4539 1488 0343 646²")  # a superscript digit is not a digit here, and does not crash


def test_iban() -> None:
    assert v.iban("DE89370400440532013000")
    assert v.iban("GB29 NWBK 6016 1331 9268 19")
    assert not v.iban("DE89370400440532013001")  # check digits
    assert not v.iban("DE8937040044053201300")  # length for DE
    assert not v.iban("ZZ89370400440532013000")  # unknown country
    assert not v.iban("DE89370400440532013０00")  # full-width digit: not ASCII, no crash


def test_github_checksum() -> None:
    random_part = "beRNKsTa3tjCDzRnmA9HULIDrtcIeK"
    token = "ghp_" + random_part + b62(zlib.crc32(random_part.encode()))
    assert v.crc32_base62_suffix(token)
    assert v.NAMED["github_checksum"] is v.crc32_base62_suffix
    assert v.crc32_base62_suffix("npm_" + random_part + b62(zlib.crc32(random_part.encode())))
    assert v.crc32_base62_suffix("ghp_" + "0" * 31 + "4WZ4EQ")  # CredSweeper's public test vector
    assert not v.crc32_base62_suffix(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not v.crc32_base62_suffix("ghp_16C7e42F292c6912E7710c838347Ae178B4a")  # widely copied fake
    assert not v.crc32_base62_suffix("ghp_short")


def test_known_checksum() -> None:
    random_part = "beRNKsTa3tjCDzRnmA9HULIDrtcIeK"
    valid = random_part + b62(zlib.crc32(random_part.encode()))
    assert v.known_checksum("ghp_" + valid)
    assert v.known_checksum("npm_" + valid)
    assert not v.known_checksum("ghp_16C7e42F292c6912E7710c838347Ae178B4a")  # GitHub format, bad checksum
    assert not v.known_checksum("npm_16C7e42F292c6912E7710c838347Ae178B4a")
    assert v.known_checksum("h7Gk2LmQ9pXz4VbNq8Wd")  # not a checksummed format: no opinion
    assert v.known_checksum("ghp_short")


def test_jwt() -> None:
    header, payload = b64url({"alg": "HS256", "typ": "JWT"}), b64url({"sub": "42"})
    assert v.jwt_structure(f"{header}.{payload}.c2lnbmF0dXJl")
    assert not v.jwt_structure(f"{b64url({'typ': 'JWT'})}.{payload}.sig")  # no alg
    assert not v.jwt_structure(f"{header}.{payload}")  # two parts
    assert not v.jwt_structure("eyJub3QganNvbg.eyJhIjoxfQ.sig")  # header is not JSON
    deep = base64.urlsafe_b64encode(b'{"a":' + b"[" * 100_000).rstrip(b"=").decode()
    assert not v.jwt_structure(f"{deep}.{payload}.sig")  # too deep to parse: rejected, not raised


def test_ssn() -> None:
    assert v.us_ssn("536-22-8140")
    assert v.us_ssn("536228140")
    for bad in (
        "000-22-8140",
        "666-22-8140",
        "912-22-8140",
        "536-00-8140",
        "536-22-0000",
        "123-45-6789",
        "078-05-1120",
        "53622814",
    ):
        assert not v.us_ssn(bad), bad


def test_has_digit() -> None:
    assert v.has_digit("abc1")
    assert not v.has_digit("abcdef")


def test_has_letter_and_digit() -> None:
    assert v.has_letter_and_digit("a1")
    assert not v.has_letter_and_digit("123456")
    assert not v.has_letter_and_digit("settings.API_KEY")


def test_random_mixed_case() -> None:
    assert v.random_mixed_case("RcToxtWJjtJelBrXBhSzPrtesRVxm")  # random base62 that happens to have no digit
    assert v.random_mixed_case("_RcTox-tWJjtJelBrXBhSzPrtesRVxm_l_Uwx")  # base64url
    assert not v.random_mixed_case("getAccessTokenFromCache")  # camelCase words
    assert not v.random_mixed_case("HTTPServerRequestHandler")
    assert not v.random_mixed_case("kebab-case-identifier-name")  # one case only
    assert not v.random_mixed_case("qwhdkzmgplxrtvbnsyfjcowe")  # lowercase only: not judged random
    assert not v.random_mixed_case("RcToxtWJjtJel")  # too short
    assert not v.random_mixed_case("(Rc|To)x[tW]Jjt{Je}lBrXB")  # regex / code, not a token alphabet


def test_token_like() -> None:
    assert v.token_like("a1b2c3")  # letters and a digit, as has_letter_and_digit
    assert v.token_like("IPtGwADdzfLrjMcgMuxIapYH")  # no digit, but random
    assert not v.token_like("settings.API_KEY")
    assert not v.token_like("someVeryLongCamelCaseName")
    assert not v.token_like("123456789012345678901234")
    assert v.NAMED["token_like"] is v.token_like


def test_password_like() -> None:
    assert v.password_like("jlseQ#kJRW!tEPo")
    assert v.password_like("Tr0ub4dor")
    assert not v.password_like("self.password")
    assert not v.password_like("get_secret_value")
    assert not v.password_like("12345678")


def test_not_placeholder() -> None:
    assert v.not_placeholder("h7Gk2LmQ9pXz4VbN")
    for placeholder in (
        "AKIAIOSFODNN7EXAMPLE",
        "YOUR_API_KEY",
        "sk-xxxxxxxxxxxx",
        "<token>",
        "${GITHUB_TOKEN}",
        "{{ token }}",
        "changeme",
        "********",
        "sk-...",
        "redacted-token",
        "abc0123456789",
        "password",
        "aaaa",
    ):
        assert not v.not_placeholder(placeholder), placeholder


# Placeholders by kind: the general shapes developers write where a secret goes, none of them a value.
PLACEHOLDER_KINDS = {
    "template": ["#{DeployToken}#", "@deploy.token@", "__DEPLOY_TOKEN__", "{DEPLOY_TOKEN}", "$(DEPLOY_TOKEN)",
                 "%(deploy_token)s", "$DEPLOY_TOKEN"],
    "filler": ["sk_live_bbbbbbbbbbbbbbbbbbbbbbbbbbbb", "ghp_111111111111111111111111111111111111", "AKIA7777777777777777",
               "tok-0000000000-0000000000", "xyz789xyz789xyz789xyz789", "QQQQQQQQQQQQQQQQ"],
    "phrase about a secret": ["super-secret-signing-key", "insert_your_token_here", "token-goes-here", "not-a-real-secret",
                              "change_this_password", "my-dev-jwt-secret", "secret-for-local-dev", "MY-API-TOKEN",
                              "unset", "changeit", "password1", "dummy-secret-1234"],
    "name of a secret": ["PAYMENTS_SIGNING_SECRET", "DeployTokenSecretName", "process.env.DEPLOY_TOKEN",
                         "secrets.DEPLOY_TOKEN", "steps.login.outputs.token", "settings.payments.api_key",
                         "env.DEPLOY_TOKEN", "prod/billing/deploy-token"],
    "code that reads it": ["os.environ['DEPLOY_TOKEN']", 'System.getenv("DEPLOY_TOKEN")', "settings.get('deploy_token')",
                           "os.environ[", "getenv("],
    "dotted code": ["serialization.Ed25519PrivateKey", "hpke.MLKEM768X25519PrivateKey", "self.signing_key",
                    "rfc5958.EncryptedPrivateKeyInfo"],
    "secret-store reference": ["op://platform/deploy/token", "vault:secret/data/billing#token",
                               "ref+awssm://billing/deploy#token",
                               "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-Ab12Cd",
                               "projects/billing/secrets/deploy-token/versions/3"],
    "angle opening cut at a space": ["<paste"],
}


@pytest.mark.parametrize("kind", list(PLACEHOLDER_KINDS))
def test_placeholders_of_each_kind_are_not_values(kind: str) -> None:
    kept = [p for p in PLACEHOLDER_KINDS[kind] if v.not_placeholder(p)]
    assert kept == []


# Real-looking values (random, the right shape) that sit next to placeholder-ish words or share a placeholder's
# outline: the filter must keep every one.
REAL_LOOKING = [
    "Hq7Wz2Lm9Xk4Rt8Vb3Nc6Pd",  # random base62
    "super-secret-key-8f3a9c2b7d1e4a6f",  # phrase, then a random part
    "secret_Qm4Zx8Lk2Wr7Tn",
    "my-api-key-Vb3Nq7Zx2Lm8Rk4Tw9Hc",
    "AAAAAAAAAAAAAAAAAAAAAHq7Wz2Lm9Xk4Rt8Vb3Nc6PdQm4Zx8Lk2Wr7TnVb3Nq7Zx2Lm8Rk4Tw9HcXk",  # a run, then random
    "fm2_lJPECAAAAAAAAHq7Wz2Lm9Xk4Rt8Vb3Nc6Pd/Qm4Zx8Lk2Wr7Tn",  # base64 of zero bytes inside a token
    "SG.Hq7Wz2Lm9Xk4Rt8Vb3Nc6P.dQm4Zx8Lk2Wr7TnVb3Nq7Zx2Lm8Rk4Tw9HcXk",  # dotted, random parts
    "ya29.Hq7Wz2Lm9Xk4Rt8Vb3Nc6PdQm4Zx8Lk2",
    "bPxRfiCYz/K7MDENG/wJalrXUtnFEMIq8Vz2",  # base64 with slashes: its parts are not names
    "correct-horse-battery-staple",  # a passphrase of ordinary words
    "sunny.river.stone",
    "Xk29#fLq0ZpW7!rT3v",
]


@pytest.mark.parametrize("value", REAL_LOOKING)
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert v.not_placeholder(value)


def test_random_tokens_in_placeholder_outlines_are_kept() -> None:
    """Random base62 parts joined the way names are (dots, slashes, dashes, underscores, a vendor prefix): none
    may read as a name, a phrase, filler or a template."""
    rng = random.Random("not_placeholder/random")
    dropped = []
    for _ in range(2000):
        parts = ["".join(rng.choice(BASE62) for _ in range(rng.randint(12, 40))) for _ in range(rng.randint(1, 3))]
        value = rng.choice(["", "sk_live_", "tok-", "SG.", "ya29."]) + rng.choice([".", "/", "-", "_"]).join(parts)
        if not v.not_placeholder(value) and not v._SEQUENTIAL.search(value):
            dropped.append(value)
    assert dropped == []


def test_not_identifier() -> None:
    for name in ("gss_krb5_rfc1964_keydata", "w32-register-hot-key", "payments_webhook_signing_key_v2"):
        assert not v.not_identifier(name), name
    # random lower-case tokens in groups, and one word: values
    for value in ("q7zk2xw9-tvbn-qz4m-t8vw-mk3xq9zt2wpl", "k3xq7mz2rv5wbn6dyc4tfl2he7upja5s", "sk_live_q8x4kz7mw2",
                  "xkqz-pvbm-trnl"):
        assert v.not_identifier(value), value


def test_basic_auth() -> None:
    assert v.basic_auth(base64.b64encode(b"deploybot:Zq8Lm2Xk9Rt4").decode())
    assert not v.basic_auth(base64.b64encode(b"no-colon-here").decode())
    assert not v.basic_auth(base64.b64encode(b"user:").decode())
    assert not v.basic_auth(base64.b64encode(b":password").decode())
    assert v.basic_auth(base64.b64encode(b":k3xq7mz2rv5wbn6dyc4tfl2he7upja5s").decode())  # empty user + token
    assert not v.basic_auth(base64.b64encode(b"user:\x00\x01").decode())
    assert not v.basic_auth("not base64 at all!")


def test_discord_bot_token() -> None:
    head = base64.urlsafe_b64encode(b"762900531866408828").rstrip(b"=").decode()
    assert v.discord_bot_token(f"{head}.Gabcde.hyXaHgMfNWWew5NySb17FY9UNhC8PcYHd0UMO")
    not_digits = base64.urlsafe_b64encode(b"hello-world-abcdefg").rstrip(b"=").decode()
    assert not v.discord_bot_token(f"{not_digits}.Gabcde.hyXaHgMfNWWew5NySb17FY9UNhC8PcYHd0UMO")
    seventeen = base64.urlsafe_b64encode(b"13307666193451450").rstrip(b"=").decode()  # 23 characters
    assert len(seventeen) == 23 and v.discord_bot_token(f"{seventeen}.0PRfMB.7-WY5YQ1xOy1bAimCaXyMFSb4hB")
    short_id = base64.urlsafe_b64encode(b"12345").rstrip(b"=").decode()
    assert not v.discord_bot_token(f"{short_id}.Gabcde.hyXaHgMfNWWew5NySb17FY9UNhC8PcYHd0UMO")


@pytest.mark.parametrize("number", ["(415) 738-2046", "415-738-2046", "+1 415 738 2046", "1-800-642-0123", "415-555-0200"])
def test_nanp_phone_valid(number: str) -> None:
    assert v.nanp_phone(number)


@pytest.mark.parametrize(
    "number",
    [
        "(123) 456-7890",
        "(415) 155-0132",
        "911-555-0100",
        "415-911-0100",
        "492-555-0100",
        "555-555-0100",
        "222-222-2222",
        "415-555-013",
        "(212) 555-0182",  # 555-0100..0199: reserved for fiction
        "+1-202-555-0175",
        "415.555.0100",
    ],
)
def test_nanp_phone_invalid(number: str) -> None:
    assert not v.nanp_phone(number)


def test_e164_phone() -> None:
    assert v.e164_phone("+44 20 7946 0958")
    assert v.e164_phone("+4915112345678")
    assert v.e164_phone("+49 (0)30 901820")
    assert v.e164_phone("+14157382046")  # +1 written compactly is checked as NANP
    assert not v.e164_phone("+12025550175")  # ... and the fictional 555-01XX range is not a number
    assert v.e164_phone("+49 170 42180967")  # long groups after the country code
    assert v.e164_phone("+49 (30) 901820-44")
    assert not v.e164_phone("+1 415 555 0132")  # formatted NANP numbers belong to the NANP rule
    assert not v.e164_phone("+12345678")  # +1 but not a NANP number
    assert not v.e164_phone("+999 1234 5678")  # unassigned calling code
    assert not v.e164_phone("+44 123")  # too short
    assert not v.e164_phone("+1111111111")


def test_email() -> None:
    assert v.email_address("dana.whitfield@northwind-logistics.com")
    assert v.email_address("m.lopez@unizar.es")
    assert v.NAMED["email"] is v.email_address
    assert v.email_address("...jane@acme.com")  # punctuation a right-to-left match picked up in front
    assert v.email_address("mailto:jane@acme.com")
    assert v.email_address("https://graph.microsoft.com/v1.0/users/jane@acme.com")  # an address in a URL path
    assert not v.email_address("amqp://orders:pw@rabbitmq.internal")  # URI user-info, not an address
    assert not v.email_address("http://svc@proxy.corp")
    assert not v.email_address("orders:Xw7rTq2LmN9p@rabbitmq.internal")  # user:password@host
    for bad in (
        "x@self.weight",
        "logo@2x.png",
        "a..b@acme.com",
        "a@-acme.com",
        "a@acme",
        "no-at-sign.com",
    ):
        assert not v.email_address(bad), bad
