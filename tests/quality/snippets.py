"""How a planted value reads in a prompt: a sentence, a code file in one of seven languages, a log or trace.

Templates use @@V@@ (the value), @@ENV@@ (its variable name), @@env@@ (lower-case), @@FILE@@ (file kinds'
path), so code braces need no escaping.
"""

from __future__ import annotations

import random

from tests.quality.kinds import CONTEXT_PROSE, SECRET_PROSE, Kind

LANGS = ("python", "js", "go", "yaml", "terraform", "dockerfile", "shell")
FENCE = {"python": "python", "js": "javascript", "go": "go", "yaml": "yaml", "terraform": "hcl",
         "dockerfile": "dockerfile", "shell": "bash", "sql": "sql", "json": "json", "toml": "toml", "dotenv": "dotenv"}
FILE_OF = {"python": "app/clients/vendor.py", "js": "src/lib/client.js", "go": "internal/api/client.go",
           "yaml": "deploy/values.yaml", "terraform": "infra/main.tf", "dockerfile": "Dockerfile",
           "shell": "scripts/deploy.sh", "sql": "db/seed.sql", "json": "config/settings.json",
           "toml": "config/app.toml", "dotenv": "config/app.properties"}


def fill(template: str, kind: Kind, value: str, name: str) -> str:
    return (template.replace("@@V@@", value).replace("@@ENV@@", name).replace("@@env@@", name.lower())
            .replace("@@FILE@@", kind.filename or "tls.key"))


def var_name(kind: Kind, rng: random.Random) -> str:
    return rng.choice(kind.env.split("|")) if kind.env else "value"


# -- sentences ---------------------------------------------------------------------------------------------

PEM_PROSE = (
    "This is the deploy key the pipeline uses; ssh says 'invalid format':\n@@V@@\nWhat is wrong with it?",
    "I pasted the key into the secret store like this, is the format right?\n\n@@V@@\n",
    "key below\n```\n@@V@@\n```\nconvert it to a single line for the helm values please",
)
FILE_PROSE = (
    "Here is my @@FILE@@ — the CLI still says unauthorized:\n```\n@@V@@\n```",
    "contents of @@FILE@@:\n\n@@V@@\n\nwhy is the second entry ignored?",
    "I copied @@FILE@@ from my laptop to the build box:\n@@V@@\nbut the job still cannot authenticate.",
)


def prose(kind: Kind, value: str, rng: random.Random) -> str:
    name = var_name(kind, rng)
    if kind.prose:
        template = rng.choice(kind.prose)
    elif kind.group == "private-key":
        template = rng.choice(PEM_PROSE)
    elif kind.group == "file":
        template = rng.choice(FILE_PROSE)
    elif kind.context:
        template = rng.choice(CONTEXT_PROSE)
    else:
        template = rng.choice(SECRET_PROSE)
    template = template.replace("{v}", "@@V@@").replace("{env}", "@@ENV@@").replace("{name}", name)
    return fill(template.replace("{{", "{").replace("}}", "}"), kind, value, name)


# -- code files ----------------------------------------------------------------------------------------------

CODE = {
    "python": '''import os

import requests

@@ENV@@ = os.environ.get("@@ENV@@", "@@V@@")
BASE_URL = "https://api.internal.dev/v2"


def fetch_projects(session: requests.Session) -> list[dict]:
    resp = session.get(f"{BASE_URL}/projects", headers={"X-Api-Key": @@ENV@@}, timeout=10)
    resp.raise_for_status()
    return resp.json()["items"]
''',
    "js": '''import axios from "axios";

const client = axios.create({
  baseURL: "https://api.internal.dev/v2",
  headers: { "X-Api-Key": process.env.@@ENV@@ || "@@V@@" },
  timeout: 10_000,
});

export async function listProjects() {
  const { data } = await client.get("/projects");
  return data.items;
}
''',
    "go": '''package api

import (
	"net/http"
	"os"
)

func init() {
	os.Setenv("@@ENV@@", "@@V@@")
}

func newRequest(url string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("@@ENV@@"))
	return req, nil
}
''',
    "yaml": '''apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
        - name: api
          image: ghcr.io/acme/api:1.14.2
          env:
            - name: @@ENV@@
              value: "@@V@@"
            - name: LOG_LEVEL
              value: info
''',
    "terraform": '''resource "kubernetes_secret" "api" {
  metadata {
    name      = "api-credentials"
    namespace = "prod"
  }

  data = {
    @@env@@ = "@@V@@"
  }
}
''',
    "dockerfile": '''FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
ENV @@ENV@@=@@V@@
COPY . .
CMD ["gunicorn", "app:server", "-b", "0.0.0.0:8080"]
''',
    "shell": '''#!/usr/bin/env bash
set -euo pipefail

export @@ENV@@="@@V@@"
./scripts/migrate.sh --env production
kubectl rollout restart deployment/api -n prod
''',
}

CODE_MULTILINE = {
    "python": '''import jwt

PRIVATE_KEY = """@@V@@"""


def sign(claims: dict) -> str:
    return jwt.encode(claims, PRIVATE_KEY, algorithm="RS256")
''',
    "js": '''const crypto = require("node:crypto");

const privateKey = `@@V@@`;

module.exports.sign = (data) => crypto.sign("sha256", Buffer.from(data), privateKey).toString("base64");
''',
    "go": '''package signer

const signingKey = `@@V@@`

func Key() []byte { return []byte(signingKey) }
''',
    "yaml": '''apiVersion: v1
kind: Secret
metadata:
  name: signing-key
type: Opaque
stringData:
  private.pem: |
@@INDENTED@@
''',
    "terraform": '''resource "tls_locally_signed_cert" "api" {
  ca_cert_pem        = file("ca.pem")
  ca_private_key_pem = <<-EOT
@@INDENTED@@
  EOT
}
''',
    "dockerfile": '''FROM alpine:3.20
RUN apk add --no-cache openssh-client git
RUN mkdir -p /root/.ssh && cat > /root/.ssh/id_rsa <<'EOF'
@@V@@
EOF
RUN chmod 600 /root/.ssh/id_rsa && git clone git@github.com:acme/infra.git
''',
    "shell": '''#!/usr/bin/env bash
set -euo pipefail
cat > deploy_key.pem <<'EOF'
@@V@@
EOF
chmod 600 deploy_key.pem
ssh -i deploy_key.pem deploy@10.0.4.12 'sudo systemctl restart api'
''',
}

CODE_FILE_CONTENT = {
    "shell": '''#!/usr/bin/env bash
# bootstrap a build agent
set -euo pipefail
mkdir -p "$(dirname @@FILE@@)"
cat > @@FILE@@ <<'EOF'
@@V@@
EOF
chmod 600 @@FILE@@
''',
    "dockerfile": '''FROM node:20-bookworm
WORKDIR /srv
RUN cat > /srv/@@BASENAME@@ <<'EOF'
@@V@@
EOF
RUN npm ci && npm run build
''',
    "python": '''from pathlib import Path

CONTENT = """@@V@@"""

Path("@@FILE@@").expanduser().write_text(CONTENT)
''',
}

CODE_PII = {
    "python": '''CUSTOMERS = [
    {"id": 1042, "name": "Jane Roe", "@@env@@": "@@V@@", "plan": "pro"},
    {"id": 1043, "name": "Max Power", "plan": "free"},
]
''',
    "js": '''export const fixture = {
  id: 1042,
  name: "Jane Roe",
  @@env@@: "@@V@@",
  plan: "pro",
};
''',
    "yaml": '''customers:
  - id: 1042
    name: Jane Roe
    @@env@@: "@@V@@"
    plan: pro
''',
    "sql": '''INSERT INTO customers (id, name, @@env@@, plan)
VALUES (1042, 'Jane Roe', '@@V@@', 'pro');
''',
    "go": '''var fixture = map[string]string{
	"name":    "Jane Roe",
	"@@env@@": "@@V@@",
	"plan":    "pro",
}
''',
}

GENERIC_LANG = {"generic-dotenv": "dotenv", "generic-yaml": "yaml", "generic-json": "json", "generic-toml": "toml",
                "generic-python": "python", "generic-js": "js", "generic-shell": "shell"}
GENERIC_FILE = {
    "dotenv": "LOG_LEVEL=debug\nPORT=8080\n@@LINE@@\nFEATURE_FLAGS=search,billing\n",
    "yaml": "server:\n  port: 8080\n  host: 0.0.0.0\nauth:\n  @@LINE@@\n  issuer: https://auth.internal.dev\n",
    "json": '{\n  "port": 8080,\n  "auth": {\n    "issuer": "https://auth.internal.dev",\n    @@LINE@@\n  }\n}\n',
    "toml": '[server]\nport = 8080\n\n[auth]\nissuer = "https://auth.internal.dev"\n@@LINE@@\n',
    "python": 'import os\n\nDEBUG = False\nALLOWED_HOSTS = ["api.internal.dev"]\n@@LINE@@\n'
              'DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "app"}}\n',
    "js": 'module.exports = {\n  port: 8080,\n};\n\n@@LINE@@\nmodule.exports.auth = { issuer: "https://auth.internal.dev" };\n',
    "shell": '#!/bin/sh\nset -e\n@@LINE@@\nexec ./bin/server --port 8080\n',
}


def code(kind: Kind, value: str, lang: str, rng: random.Random) -> tuple[str, str]:
    """(file text, language) of a source file carrying the value."""
    name = var_name(kind, rng)
    if kind.group == "generic":
        lang = GENERIC_LANG[kind.name]
        line = fill(kind.prose[0].replace("{v}", "@@V@@").replace("{name}", name), kind, value, name)
        return GENERIC_FILE[lang].replace("@@LINE@@", line), lang
    if kind.group == "file":
        lang = lang if lang in CODE_FILE_CONTENT else rng.choice(sorted(CODE_FILE_CONTENT))
        basename = kind.filename.rsplit("/", 1)[-1]
        return fill(CODE_FILE_CONTENT[lang], kind, value, name).replace("@@BASENAME@@", basename), lang
    if kind.multiline:
        indent = "    " if lang in ("yaml", "terraform") else ""
        text = CODE_MULTILINE[lang].replace("@@INDENTED@@", "\n".join(indent + ln if ln else "" for ln in value.split("\n")))
        return fill(text, kind, value, name), lang
    if kind.group == "pii":
        lang = lang if lang in CODE_PII else rng.choice(sorted(CODE_PII))
        return fill(CODE_PII[lang], kind, value, name), lang
    if kind.name in ("authorization-bearer-opaque", "authorization-basic", "curl-user-credentials"):
        lang = "shell"
        return fill("#!/usr/bin/env bash\nset -euo pipefail\n" + prose(kind, value, rng).replace("\n", "\n")
                    + "\n", kind, value, name), lang
    return fill(CODE[lang], kind, value, name), lang


# -- logs and traces -------------------------------------------------------------------------------------------

LOG_TOKEN = (
    '''Traceback (most recent call last):
  File "/app/worker/sync.py", line 41, in <module>
    client = VendorClient("@@V@@", timeout=30)
  File "/app/.venv/lib/python3.11/site-packages/vendor/client.py", line 88, in __init__
    self._check_auth()
  File "/app/.venv/lib/python3.11/site-packages/vendor/client.py", line 131, in _check_auth
    raise AuthenticationError("invalid credentials")
vendor.errors.AuthenticationError: invalid credentials''',
    '''Run printenv | sort
CI=true
GITHUB_ACTIONS=true
GITHUB_REF=refs/heads/main
@@ENV@@=@@V@@
HOME=/home/runner
RUNNER_OS=Linux''',
    "2024-05-02T10:14:07.532Z DEBUG urllib3.connectionpool Starting new HTTPS connection (1): api.internal.dev:443\n"
    "2024-05-02T10:14:07.611Z DEBUG http.client send: b'POST /v2/deploy HTTP/1.1\\r\\nHost: api.internal.dev"
    "\\r\\nX-Api-Key: @@V@@\\r\\nContent-Type: application/json\\r\\n\\r\\n'\n"
    '2024-05-02T10:14:07.689Z DEBUG urllib3.connectionpool https://api.internal.dev:443 "POST /v2/deploy HTTP/1.1" 401 61',
)
LOG_CONTEXT = (
    '''Traceback (most recent call last):
  File "/app/worker/sync.py", line 41, in <module>
    client = VendorClient(@@env@@="@@V@@", timeout=30)
  File "/app/.venv/lib/python3.11/site-packages/vendor/client.py", line 88, in __init__
    raise AuthenticationError("invalid credentials")
vendor.errors.AuthenticationError: invalid credentials''',
    LOG_TOKEN[1],
)
LOG_PII = (
    "2024-05-02 10:14:07,532 INFO  checkout.payment order=8812 @@env@@=@@V@@ status=declined reason=do_not_honor\n"
    "2024-05-02 10:14:07,540 INFO  checkout.payment retry scheduled in 30s",
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for Customer\n@@env@@\n"
    "  Value error, rejected by upstream [type=value_error, input_value='@@V@@', input_type=str]",
)
LOG_MULTILINE = (
    "$ kubectl exec -it deploy/api -n prod -- cat /etc/secrets/@@FILE@@\n@@V@@\n$ kubectl logs deploy/api -n prod | tail -1\n"
    "Error: unable to load key material",
    "[2024-05-02 10:14:07] ERROR loader: rejected key material (unsupported format), dumping input:\n@@V@@\n"
    "[2024-05-02 10:14:07] ERROR loader: giving up after 3 attempts",
)


def log(kind: Kind, value: str, rng: random.Random) -> str:
    name = var_name(kind, rng)
    if kind.multiline:
        template = rng.choice(LOG_MULTILINE)
    elif kind.group == "pii":
        template = rng.choice(LOG_PII)
    elif kind.group == "generic":
        return "$ docker inspect api --format '{{json .Config.Env}}' | jq -r '.[]'\nPATH=/usr/local/bin:/usr/bin\n" + \
            code(kind, value, "", rng)[0]
    elif kind.context or kind.prose:
        if kind.prose:
            return "$ ./scripts/smoke.sh\n+ " + prose(kind, value, rng).replace("\n", "\n+ ") + \
                "\nHTTP/1.1 401 Unauthorized\nsmoke test failed"
        template = rng.choice(LOG_CONTEXT)
    else:
        template = rng.choice(LOG_TOKEN)
    return fill(template, kind, value, name)


# -- PEM with literal backslash-n (pasted from JSON / a .env) -----------------------------------------------------

ESCAPED_PEM = (
    '@@ENV@@="@@V@@"',
    '{\n  "type": "signer",\n  "@@env@@": "@@V@@",\n  "kid": "2024-05"\n}',
    'resource "vault_generic_secret" "signer" {\n  path      = "secret/signer"\n  data_json = jsonencode({\n'
    '    @@env@@ = "@@V@@"\n  })\n}',
)


def escaped_pem(kind: Kind, escaped_value: str, rng: random.Random, which: int) -> str:
    return fill(ESCAPED_PEM[which % len(ESCAPED_PEM)], kind, escaped_value, var_name(kind, rng))
