"""Hard negatives: text that looks like a credential or PII but is not one, placed like the positives.

Documented example keys, placeholders, redacted values, hashes, UUIDs, git SHAs, lockfile integrity strings,
base64 images, public keys and certificates, code that only names a secret, versions, numbers, timestamps,
IP addresses, password-less URLs, fictional phone numbers and example.com e-mail addresses, and benign
mentions of secret files. Any finding on these is a false positive.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.quality import keymaterial as km
from tests.quality.corpus import CHAT_APIS, SYSTEM, Case, Plant, _Rotor, case_rng, conversation, read_call
from tests.quality.kinds import HEX, luhn_ok, rs, uuid4
from tests.quality.render import Conversation, Turn, envelope, render, serialise

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PER_NEGATIVE = 3  # placements per template, each with fresh random parts


@dataclass(frozen=True)
class Negative:
    name: str
    group: str
    gen: Callable[[random.Random], str]
    tool_read: bool = False  # the text is a path an agent's tool reads
    image: bool = False  # the text is a data: URL sent as an image block


def _sha(rng: random.Random, algo: str) -> str:
    return hashlib.new(algo, km.rand_bytes(rng, 32)).hexdigest()


def _png_data_url(rng: random.Random) -> str:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + km.rand_bytes(rng, 48) for _ in range(16))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _integrity(rng: random.Random) -> str:
    return "sha512-" + base64.b64encode(km.rand_bytes(rng, 64)).decode()


NEGATIVES: tuple[Negative, ...] = (
    # documented example credentials
    Negative("aws-doc-key-id", "documented-example",
             lambda r: "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE  # from the AWS docs"),
    Negative("aws-doc-secret", "documented-example",
             lambda r: "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                       "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nregion = us-west-2"),
    Negative("jwt-io-sample", "documented-example",
             lambda r: "The jwt.io debugger decodes its sample token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                       "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
                       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c as {\"sub\": \"1234567890\", \"name\": \"John Doe\"}"),
    Negative("stripe-doc-test-key", "documented-example",
             lambda r: "stripe.api_key = \"sk_test_4eC39HqLyjWDarjtT1zdp7dc\"  # Stripe's docs sample test key"),
    # GitHub/npm-format tokens whose checksum does not verify are reported on purpose (medium severity:
    # mistyped, truncated or fake tokens are still treated as credentials), so they are not negatives here.
    # placeholders and redacted values
    Negative("placeholder-your-api-key", "placeholder",
             lambda r: r.choice(["OPENAI_API_KEY=YOUR_API_KEY", "api_key = \"your-api-key-here\"",
                                 "export ANTHROPIC_API_KEY=<your-anthropic-key>"])),
    Negative("placeholder-xxx", "placeholder",
             lambda r: r.choice(["AWS_SECRET_ACCESS_KEY=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                 "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "password: xxx"])),
    Negative("placeholder-angle", "placeholder",
             lambda r: r.choice(["curl -H 'Authorization: Bearer <token>' https://api.github.com/user",
                                 "mysql://root:<password>@127.0.0.1:3306/shop", "token: <GITLAB_TOKEN>"])),
    Negative("placeholder-env-var", "placeholder",
             lambda r: r.choice(["DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
                                 "export STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY:?missing}",
                                 "password = \"${var.db_password}\""])),
    Negative("placeholder-template", "placeholder",
             lambda r: r.choice(["      - run: npm publish\n        env:\n          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}",
                                 "db_password: \"{{ vault_db_password }}\"",
                                 "api_key: {{ .Values.apiKey | quote }}"])),
    Negative("placeholder-changeme", "placeholder",
             lambda r: r.choice(["POSTGRES_PASSWORD=changeme", "admin_password: changeme",
                                 "SECRET_KEY = \"change-me-in-production\""])),
    Negative("redacted-stars", "placeholder",
             lambda r: r.choice(["OPENAI_API_KEY=sk-proj-****************************************3xQz",
                                 "token: ghp_************************************",
                                 "postgres://app:********@db.internal:5432/app", "password: \"****\""])),
    Negative("redacted-marker", "placeholder",
             lambda r: r.choice(["Authorization: Bearer [REDACTED]", "aws_secret_access_key = <redacted>",
                                 "\"api_key\": \"sk-...redacted\""])),
    Negative("placeholder-substitution", "placeholder",
             lambda r: r.choice(["<add key=\"PaymentsApiKey\" value=\"#{PaymentsApiKey}#\" />",
                                 "payments.api.key=@payments.api.key@", "PAYMENTS_TOKEN=__PAYMENTS_TOKEN__",
                                 "Server=db;Database=app;User Id=app;Password=$(DB_PASSWORD);"])),
    Negative("placeholder-filler", "placeholder",
             lambda r: r.choice(["STRIPE_SECRET_KEY=sk_live_" + r.choice("abcxyz0179") * 24,
                                 "DATABASE_URL=postgres://app:" + r.choice("abc0127") * 16 + "@db.internal/app",
                                 "webhook_secret = \"" + "whsec" + "9x4" * 8 + "\""])),
    Negative("placeholder-phrase", "placeholder",
             lambda r: r.choice(["JWT_SECRET=super-secret-signing-key\nJWT_TTL=3600",
                                 "SESSION_SECRET=not-a-real-secret\nPORT=3000",
                                 "DATABASE_URL=postgres://app:change_this_password@db.internal/app",
                                 "api_token: \"insert-your-token-here\""])),
    Negative("name-of-a-secret-as-value", "placeholder",
             lambda r: r.choice(["APP_ENV=prod\nDEPLOY_TOKEN=steps.login.outputs.token",
                                 "Server=db;Database=app;User Id=app;Password=PAYMENTS_DB_PASSWORD;",
                                 "deploy_token: prod/billing/deploy-token",
                                 "APP_ENV=prod\nSTRIPE_KEY=process.env.STRIPE_SECRET_KEY"])),
    Negative("secret-store-reference", "placeholder",
             lambda r: r.choice(["APP_ENV=prod\nDEPLOY_TOKEN=op://platform/deploy/token",
                                 "db_password: arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-db-Ab12Cd",
                                 "APP_ENV=prod\nAPI_KEY=projects/billing/secrets/api-key/versions/latest"])),
    Negative("key-named-public-values", "public-key",
             lambda r: r.choice([f"vapid_public_key = \"B{rs(r, _B64URL, 86)}\"",
                                 f"stripePublishableKey: \"pk_live_{rs(r, _B64URL[:62], 24)}\"",
                                 f"kms_key_id = \"{uuid4(r)}\""])),
    # hashes, ids, digests
    Negative("sha256-checksum", "hash", lambda r: f"{_sha(r, 'sha256')}  dist/app-1.4.2.tar.gz"),
    Negative("sha1-md5", "hash", lambda r: f"etag: \"{_sha(r, 'md5')}\"\nchecksum (sha1): {_sha(r, 'sha1')}"),
    Negative("docker-digest", "hash", lambda r: f"image: ghcr.io/acme/api@sha256:{_sha(r, 'sha256')}"),
    Negative("git-log", "hash",
             lambda r: f"commit {_sha(r, 'sha1')}\nMerge: {rs(r, HEX, 7)} {rs(r, HEX, 7)}\n"
                       "Date:   Thu May 2 10:14:07 2024 +0200\n\n    Fix flaky retry test"),
    Negative("uuid", "hash", lambda r: f"request_id={uuid4(r)} trace_id={rs(r, HEX, 32)} span_id={rs(r, HEX, 16)}"),
    Negative("package-lock-integrity", "lockfile",
             lambda r: '"node_modules/lodash": {\n  "version": "4.17.21",\n  "resolved": '
                       '"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz",\n  "integrity": "'
                       + _integrity(r) + '"\n}'),
    Negative("yarn-lock-integrity", "lockfile",
             lambda r: 'react@^18.2.0:\n  version "18.3.1"\n  resolved "https://registry.yarnpkg.com/react/-/react-18.3.1.tgz#'
                       + _sha(r, "sha1") + '"\n  integrity ' + _integrity(r)),
    Negative("go-sum", "lockfile",
             lambda r: f"github.com/google/uuid v1.6.0 h1:{base64.b64encode(km.rand_bytes(r, 32)).decode()}\n"
                       f"github.com/google/uuid v1.6.0/go.mod h1:{base64.b64encode(km.rand_bytes(r, 32)).decode()}"),
    Negative("poetry-lock-hash", "lockfile",
             lambda r: f'files = [\n    {{file = "requests-2.32.3-py3-none-any.whl", hash = "sha256:{_sha(r, "sha256")}"}},\n]'),
    Negative("base64-image-inline", "binary",
             lambda r: f"The logo renders blank: ![logo]({_png_data_url(r)})"),
    Negative("base64-image-block", "binary", _png_data_url, image=True),
    Negative("base64-blob", "binary",
             lambda r: "protobuf payload (base64): " + base64.b64encode(km.rand_bytes(r, 120)).decode()),
    # public keys and certificates
    Negative("ssh-public-key", "public-key", lambda r: "authorized_keys:\n" + km.ssh_public_key(r)),
    Negative("pgp-public-key", "public-key", lambda r: km.pgp_public_block(r)),
    Negative("certificate", "public-key", lambda r: "ca.crt:\n" + km.certificate_pem(r)),
    Negative("public-key-pem", "public-key", lambda r: "jwks public key:\n" + km.public_key_pem(r)),
    # code that only names a secret
    Negative("code-os-environ", "names-a-secret",
             lambda r: 'api_key = os.environ["OPENAI_API_KEY"]\ntoken = os.getenv("GITHUB_TOKEN")\n'
                       'if not api_key:\n    raise RuntimeError("OPENAI_API_KEY is not set")'),
    Negative("code-process-env", "names-a-secret",
             lambda r: "const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);\n"
                       "const token = process.env.TOKEN ?? '';"),
    Negative("code-vault-lookup", "names-a-secret",
             lambda r: 'secret = client.secrets.kv.v2.read_secret_version(path="prod/db")\n'
                       'password = secret["data"]["data"]["password"]'),
    Negative("code-k8s-secret-ref", "names-a-secret",
             lambda r: "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-credentials\n"
                       "        key: password"),
    Negative("code-terraform-ref", "names-a-secret",
             lambda r: 'resource "aws_db_instance" "main" {\n  username = "app"\n  password = random_password.db.result\n}'),
    Negative("code-go-getenv", "names-a-secret",
             lambda r: 'apiKey := os.Getenv("DATADOG_API_KEY")\nif apiKey == "" {\n\tlog.Fatal("DATADOG_API_KEY missing")\n}'),
    Negative("code-password-param", "names-a-secret",
             lambda r: "def login(username: str, password: str) -> Session:\n"
                       "    token = auth.exchange(username=username, password=password)\n    return Session(token)"),
    # versions, numbers, timestamps, addresses
    Negative("versions", "number",
             lambda r: "Python 3.11.7, node v20.11.1, openssl 3.0.13, semver 1.2.3-rc.1+build.5, kernel 6.8.0-45-generic"),
    Negative("timestamps", "number",
             lambda r: f"started_at=1714644847 finished_at={1714644847123 + r.randrange(10**6)} "
                       "iso=2024-05-02T10:14:07.532+02:00 elapsed_ns=8301122371"),
    Negative("numbers", "number",
             lambda r: f"order #{r.randrange(10**9, 10**10)} shipped in box {r.randrange(10**5, 10**6)}; "
                       f"tracking 1Z{rs(r, '0123456789ABCDEFGHJKLMNPRSTUVWXYZ', 16)}; batch 4000-0000-0000-0000"),
    Negative("ip-addresses", "number",
             lambda r: "upstream 10.0.12.7:8080, 192.168.1.20, 172.16.5.4/12, 2001:db8::1, [fe80::1ff:fe23:4567:890a]"),
    Negative("localhost-urls", "url",
             lambda r: "http://localhost:3000/api/users?page=2 and http://127.0.0.1:8000/docs and redis://localhost:6379/0"),
    Negative("passwordless-db-urls", "url",
             lambda r: r.choice(["DATABASE_URL=postgres://user@localhost/db", "postgresql://localhost:5432/mydb",
                                 "mongodb://localhost:27017/test", "mysql://root@127.0.0.1:3306/app"])),
    Negative("fictional-phone", "pii-like",
             lambda r: f"call the test line (212) 555-01{r.randrange(0, 100):02d} or +1-202-555-01{r.randrange(0, 100):02d}"),
    Negative("example-emails", "pii-like",
             lambda r: r.choice(["alice@example.com", "bob@example.org", "noreply@example.net"]) + " and "
                       + r.choice(["user@test.example", "jane.doe@example.com"]) + " are the fixtures"),
    Negative("luhn-failing-number", "pii-like",
             lambda r: "order id " + _luhn_fail(r)),
    Negative("bad-iban", "pii-like", lambda r: "IBAN DE00 1234 5678 9012 3456 78 (check digits wrong, fixture)"),
    Negative("invalid-ssn", "pii-like",
             lambda r: r.choice(["ssn: 000-12-3456", "ssn: 666-12-3456", "ssn: 912-34-5678"])),
    # benign mentions of secret files and reads of harmless ones
    Negative("mention-gitignore", "file-mention",
             lambda r: "Make sure .env and *.pem are in .gitignore and never commit id_rsa."),
    Negative("code-load-dotenv", "file-mention",
             lambda r: "from dotenv import load_dotenv\n\nload_dotenv()  # reads .env in development only"),
    Negative("ssh-keygen", "file-mention",
             lambda r: "ssh-keygen -t ed25519 -C 'ci' -f ~/.ssh/id_ed25519 && cat ~/.ssh/id_ed25519.pub"),
    Negative("ssh-key-use", "file-mention",
             lambda r: r.choice(["chmod 600 ~/.ssh/id_rsa", "ssh -i ~/.ssh/id_ed25519 deploy@10.0.4.12 uptime",
                                 "ssh-add ~/.ssh/id_rsa"])),
    Negative("env-example-copy", "file-mention",
             lambda r: r.choice(["cp .env.example .env", "echo '.env' >> .gitignore",
                                 "git rm --cached .env && git commit -m 'stop tracking .env'"])),
    Negative("read-env-example", "file-read", lambda r: ".env.example", tool_read=True),
    Negative("read-public-key", "file-read", lambda r: "~/.ssh/id_rsa.pub", tool_read=True),
    Negative("read-source", "file-read",
             lambda r: r.choice(["src/config/env.ts", "app/credentials_form.py", "docs/secrets.md", "package.json"]),
             tool_read=True),
)


def _luhn_fail(rng: random.Random) -> str:
    while True:
        n = "4" + rs(rng, "0123456789", 15)
        if not luhn_ok(n):
            return n


NEG_PLACEMENTS = ("user", "tool_result", "code_file", "assistant", "system", "document", "history")


def negatives() -> Iterator[Case]:
    rotor = _Rotor()
    for n_i, neg in enumerate(NEGATIVES):
        for i in range(PER_NEGATIVE):
            rng = case_rng("negative", neg.name, i)
            text = neg.gen(rng)
            if neg.image:
                placement = "image"
                conv = Conversation(SYSTEM, [Turn("image", text)])
            elif neg.tool_read:
                placement = "tool_call"
                conv, _ = conversation("tool_call", Plant(call=read_call(text, rng)), rng)
            else:
                placement = NEG_PLACEMENTS[(n_i + i) % len(NEG_PLACEMENTS)]
                if placement == "code_file":
                    conv, _ = conversation("user", Plant(text=f"Is this OK?\n\n```\n{text}\n```"), rng)
                else:
                    conv, _ = conversation(placement, Plant(text=text, path="notes.txt"), rng, i)
            api = rotor.api(CHAT_APIS + ("openai.responses",))
            r = render(api, conv)
            yield Case(id=f"{neg.name}/{i}", label="negative", api=api, envelope=envelope(api, serialise(r.body)),
                       group=neg.group, placement=placement, note=neg.name)

