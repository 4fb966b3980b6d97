"""Refresh the deployment variants of envoy/envoy.yaml (the single source of truth).

    python -m tests.deploy.sync          # rewrite the stale ones
    python -m tests.deploy.sync --check  # list the stale ones, exit 1 if any

Every variant is written by envoy/render.py (kustomize and compose read files only under their
own directories, so the variants are committed):

- k8s/config/envoy.yaml: the jwt_authn variant. Identity comes only from a verified gateway JWT;
  the JWKS is the file ConfigMap llm-gateway-jwks (k8s/jwks/jwks.json) mounts at K8S_JWKS. The
  issuer / audience here are examples: an organisation's go into an overlay written by
  envoy/k8s_overlay.py (k8s/README.md), not into this file.
- compose/envoy-*.yaml: variants whose filter endpoint is the compose service `filter`; the local
  one sends every provider to the `fake-provider` service. The local stack trusts identity headers.

tests/deploy checks that none is stale, so a change to envoy/envoy.yaml (or to render.py's output)
fails there until this runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "envoy" / "envoy.yaml"
RENDER = ROOT / "envoy" / "render.py"

# Where k8s/deployment.yaml mounts ConfigMap llm-gateway-jwks (generated from k8s/jwks/jwks.json).
K8S_JWKS = "/etc/envoy/jwks/jwks.json"
# The example issuer and audience: set the organisation's IdP here (see k8s/README.md).
K8S_JWT_ISSUER = "https://idp.example.internal"
K8S_JWT_AUDIENCE = "llm-gateway"
K8S_ENVOY = "k8s/config/envoy.yaml"

# Output file (relative to the repo root) -> envoy/render.py options.
K8S_VARIANTS: dict[str, list[str]] = {
    K8S_ENVOY: ["--jwt-jwks", K8S_JWKS, "--jwt-issuer", K8S_JWT_ISSUER, "--jwt-audience", K8S_JWT_AUDIENCE],
}
COMPOSE_VARIANTS: dict[str, list[str]] = {
    "compose/envoy-local.yaml": ["--upstream", "http://fake-provider:8080", "--filter", "filter:9001",
                                 "--usage", "filter:9101", "--rewriter", "filter:9201"],
    "compose/envoy-providers.yaml": ["--filter", "filter:9001", "--usage", "filter:9101", "--rewriter", "filter:9201"],
}
VARIANTS: dict[str, list[str]] = {**K8S_VARIANTS, **COMPOSE_VARIANTS}

HEADER_LINES = 2  # render.py's "# GENERATED from ... by: <command>" and "# Do not edit ..."


def render(options: list[str], output: Path, python: str = sys.executable) -> None:
    """Run envoy/render.py as its users do; the command line it records names `output` as given."""
    subprocess.run([python, str(RENDER.relative_to(ROOT)), *options, "-o", str(output)], cwd=ROOT, check=True)


def body(path: Path) -> str:
    """A generated file without its header (which names the output file)."""
    return "".join(path.read_text("utf-8").splitlines(keepends=True)[HEADER_LINES:])


def render_body(options: list[str], tmp: Path) -> str:
    """What render.py writes for these options, without its header."""
    out = tmp / "rendered.yaml"
    render(options, out)
    return body(out)


def recorded_options(path: Path) -> list[str]:
    """The render.py options a generated file records in its first line, without `-o FILE`."""
    first = path.read_text("utf-8").splitlines()[0]
    marker = "by: envoy/render.py"
    if marker not in first:
        raise ValueError(f"{path}: first line does not record a render.py command: {first!r}")
    words = first.split(marker, 1)[1].split()
    if "-o" in words:
        i = words.index("-o")
        del words[i : i + 2]
    return words


def stale(tmp: Path) -> list[str]:
    out = []
    for rel, options in VARIANTS.items():
        path = ROOT / rel
        if not path.exists():
            out.append(rel)
            continue
        try:
            recorded = recorded_options(path)
        except ValueError:
            out.append(rel)
            continue
        if recorded != options or body(path) != render_body(options, tmp):
            out.append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only list stale files; exit 1 if any")
    args = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = stale(Path(tmp))
    if args.check:
        for rel in found:
            print(f"stale: {rel}")
        return 1 if found else 0
    for rel, options in VARIANTS.items():
        render(options, Path(rel))
    for rel in found:
        print(f"updated: {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
