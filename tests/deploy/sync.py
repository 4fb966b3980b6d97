"""Refresh the deployment copies of envoy/envoy.yaml (the single source of truth).

    python -m tests.deploy.sync          # rewrite the stale ones
    python -m tests.deploy.sync --check  # list the stale ones, exit 1 if any

- k8s/config/envoy.yaml: byte-for-byte copy (kustomize reads files only under k8s/).
- compose/envoy-*.yaml: envoy/render.py variants whose filter endpoint is the compose service
  `filter`; the local one sends every provider to the `fake-provider` service.

tests/deploy checks that none is stale, so a change to envoy/envoy.yaml fails there until this runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "envoy" / "envoy.yaml"
RENDER = ROOT / "envoy" / "render.py"
K8S_COPY = ROOT / "k8s" / "config" / "envoy.yaml"

# Output file (relative to the repo root) -> envoy/render.py options.
COMPOSE_VARIANTS: dict[str, list[str]] = {
    "compose/envoy-local.yaml": ["--upstream", "http://fake-provider:8080", "--filter", "filter:9001"],
    "compose/envoy-providers.yaml": ["--filter", "filter:9001"],
}

HEADER_LINES = 2  # render.py's "# GENERATED from ... by: <command>" and "# Do not edit ..."


def render(options: list[str], output: Path, python: str = sys.executable) -> None:
    """Run envoy/render.py as its users do; the command line it records names `output` as given."""
    subprocess.run([python, str(RENDER.relative_to(ROOT)), *options, "-o", str(output)], cwd=ROOT, check=True)


def render_body(options: list[str], tmp: Path) -> str:
    """What render.py writes for these options, without its header (which names the output file)."""
    out = tmp / "rendered.yaml"
    render(options, out)
    return "".join(out.read_text("utf-8").splitlines(keepends=True)[HEADER_LINES:])


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
    if not K8S_COPY.exists() or K8S_COPY.read_bytes() != SOURCE.read_bytes():
        out.append(str(K8S_COPY.relative_to(ROOT)))
    for rel, options in COMPOSE_VARIANTS.items():
        path = ROOT / rel
        if not path.exists():
            out.append(rel)
            continue
        current = "".join(path.read_text("utf-8").splitlines(keepends=True)[HEADER_LINES:])
        if recorded_options(path) != options or current != render_body(options, tmp):
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
    K8S_COPY.write_bytes(SOURCE.read_bytes())
    for rel, options in COMPOSE_VARIANTS.items():
        render(options, Path(rel))
    for rel in found:
        print(f"updated: {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
