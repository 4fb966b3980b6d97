#!/usr/bin/env python3
"""Write a kustomize overlay of k8s/ for one organisation: its IdP (JWT issuer, audience, JWKS),
its images, and any other envoy/render.py option. Nothing in the repository is edited.

    python envoy/k8s_overlay.py -o ../gateway-prod \\
        --jwt-issuer https://login.example.com/ --jwt-audience llm-gateway --jwks idp-jwks.json \\
        --filter-image registry.example.com/llm-content-filter:0.1.0 \\
        -- --provider-host azure=myco.openai.azure.com --aws-region eu-west-1
    kubectl apply -k ../gateway-prod

The overlay holds three files: kustomization.yaml (resources: this repository's k8s/, `images`,
both Envoy ConfigMaps replaced), envoy.yaml (envoy/envoy.yaml rendered with jwt_authn and the
options after `--`), jwks.json (a copy of --jwks, public keys only). Run it again after pulling a
new version of this repository: the rendered envoy.yaml follows envoy/envoy.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402 - envoy/render.py, next to this file

K8S = Path(__file__).resolve().parents[1] / "k8s"
# Where k8s/deployment.yaml mounts ConfigMap llm-gateway-jwks.
JWKS_MOUNT = "/etc/envoy/jwks/jwks.json"
FILTER_IMAGE = "llm-content-filter"  # the image name k8s/deployment.yaml uses for the filter
ENVOY_IMAGE = "envoyproxy/envoy"
# JWK members only private or symmetric keys have (RFC 7518 6.2.2, 6.3.2, 6.4.1; RFC 8037).
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class OverlayError(ValueError):
    pass


def read_public_jwks(path: Path) -> str:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OverlayError(f"--jwks {path}: {exc}") from exc
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        raise OverlayError(f"--jwks {path}: not a JWKS (an object with a non-empty `keys` list)")
    for key in keys:
        private = PRIVATE_JWK_MEMBERS & set(key)
        if private:
            raise OverlayError(f"--jwks {path}: key {key.get('kid', '?')} has private members {sorted(private)}; "
                               "publish public keys only")  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


def split_image(ref: str) -> dict[str, str]:
    """`registry/name:tag` or `registry/name@sha256:...` -> kustomize `images` fields."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return {"newName": name, "digest": digest}
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return {"newName": ref}
    return {"newName": name, "newTag": tag}


def kustomization(out: Path, filter_image: str | None, envoy_image: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S, out.resolve())],
        "configMapGenerator": [
            {"name": "llm-gateway-envoy", "behavior": "replace", "files": ["envoy.yaml"]},
            {"name": "llm-gateway-jwks", "behavior": "replace", "files": ["jwks.json"]},
        ],
    }
    images = []
    if filter_image:
        images.append({"name": FILTER_IMAGE, **split_image(filter_image)})
    if envoy_image:
        images.append({"name": ENVOY_IMAGE, **split_image(envoy_image)})
    if images:
        doc["images"] = images
    return doc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    render_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, render_args = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Options after `--` go to envoy/render.py (see envoy/README.md), e.g. --provider-host, --aws-region, "
               "--max-heap, --authz-timeout.",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, type=Path, help="overlay directory (created)")
    p.add_argument("--jwt-issuer", required=True, help="the `iss` your IdP puts in gateway tokens")
    p.add_argument("--jwt-audience", action="append", required=True, help="accepted `aud`; repeatable")
    p.add_argument("--jwks", required=True, type=Path, help="your IdP's public JWKS (file)")
    p.add_argument("--filter-image", help="image of the filter, e.g. registry.example.com/llm-content-filter:0.1.0")
    p.add_argument("--envoy-image", help="image of Envoy (default: k8s/deployment.yaml's envoyproxy/envoy tag)")
    args = p.parse_args(argv)
    forbidden = {"--jwt-jwks", "--jwt-issuer", "--jwt-audience", "-o", "--output", "--upstream", "--no-ext-authz"}
    clash = forbidden & {a.split("=", 1)[0] for a in render_args}
    if clash:
        print(f"k8s_overlay.py: error: {sorted(clash)} cannot be passed to render.py here", file=sys.stderr)
        return 2
    try:
        jwks = read_public_jwks(args.jwks)
        options = ["--jwt-jwks", JWKS_MOUNT, "--jwt-issuer", args.jwt_issuer]
        for audience in args.jwt_audience:
            options += ["--jwt-audience", audience]
        render_ns = render.build_parser().parse_args([*options, *render_args])
        config = render.render(render.load(render.DEFAULT_CONFIG), render_ns)
    except (OverlayError, render.RenderError, KeyError, OSError, yaml.YAMLError) as exc:
        print(f"k8s_overlay.py: error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["envoy/render.py", *options, *render_args])
    (out / "envoy.yaml").write_text(
        f"# GENERATED from envoy.yaml by: {command}\n# Do not edit; run envoy/k8s_overlay.py again.\n"
        + render.dump(config),
        encoding="utf-8",
    )
    (out / "jwks.json").write_text(jwks, encoding="utf-8")
    (out / "kustomization.yaml").write_text(
        "# GENERATED by envoy/k8s_overlay.py: the llm-gateway of k8s/ with this organisation's IdP and images.\n"
        + yaml.safe_dump(kustomization(out, args.filter_image, args.envoy_image), sort_keys=False),
        encoding="utf-8",
    )
    print(f"wrote {out}/kustomization.yaml, envoy.yaml, jwks.json; apply with: kubectl apply -k {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
