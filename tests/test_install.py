"""`pip install .` without the dev extras (what the Dockerfile runs) gives a package that starts and works.

A fresh virtualenv gets exactly the files the image build copies (pyproject.toml, README.md, filter/) and
installs them with pip as a user would (dependencies from the package index, or pip's cache); then the
installed console script runs `scan`, `rules lint` and `serve` from a directory outside the repository, so
nothing is imported from the source tree or the dev environment. Slow (~30 s): a real install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import wait_grpc_ready

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's bin directory after `pip install .` of the image's build context."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(ROOT / "filter", src / "filter", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
                            capture_output=True, text=True, timeout=900, env=_clean_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "LLM_FILTER_FINGERPRINT_KEY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(bin_dir: Path, cwd: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(bin_dir / "llm-content-filter"), *args], input=stdin, capture_output=True, cwd=cwd,
                          env=_clean_env(), timeout=120)


def test_only_runtime_dependencies_are_installed(installed: Path) -> None:
    names = subprocess.run([str(installed / "python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                           check=True, text=True).stdout
    have = {p["name"].lower() for p in json.loads(names)}
    assert {"llm-content-filter", "jsonschema", "hyperscan", "grpcio", "opentelemetry-sdk"} <= have
    assert not have & {"pytest", "mypy", "ruff", "hypothesis"}, "dev extras must not be needed"


def test_installed_scan_and_rules_lint(installed: Path, tmp_path: Path) -> None:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "key AKIAZ5XQ3HR2LMNPQ7TW"}]}]}).encode()
    out = run(installed, tmp_path, "scan", "-", stdin=body)
    assert out.returncode == 1, out.stderr.decode()[-2000:]
    result = json.loads(out.stdout)
    assert (result["decision"], result["provider"]) == ("deny", "gemini")
    assert out.stderr == b""
    packs = subprocess.run([str(installed / "python"), "-c", "from filter.rules import SHIPPED_PACKS; print(SHIPPED_PACKS)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert str(ROOT) not in packs, "the installed package, not the source tree"
    lint = run(installed, tmp_path, "rules", "lint", packs)
    assert lint.returncode == 0, lint.stderr.decode()[-2000:]
    assert lint.stdout.decode().startswith("3 packs, ")


def test_installed_serve_answers_health_and_metrics(installed: Path, tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    proc = subprocess.Popen([str(installed / "llm-content-filter"), "serve", "--listen", f"127.0.0.1:{port}",
                             "--metrics-port", str(metrics)], cwd=tmp_path,
                            env={**_clean_env(), "LLM_FILTER_FINGERPRINT_KEY": "k"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_grpc_ready(f"127.0.0.1:{port}", timeout=60)  # grpc.health.v1 SERVING
        except TimeoutError:
            proc.kill()
            pytest.fail(proc.communicate()[1].decode()[-3000:])
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
        assert "llm_filter_rules_loaded" in text and 'service_name="llm-content-filter"' in text
    finally:
        proc.terminate()
        code = proc.wait(30)
    assert code == 0
