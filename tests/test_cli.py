"""The CLI as an author runs it: real processes, real exit codes, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from filter.model import Category
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset

ROOT = Path(__file__).resolve().parents[1]
INVALID = Path(__file__).parent / "rules" / "invalid"


def cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "filter", *args], input=stdin, capture_output=True, cwd=ROOT,
                          env={**os.environ, "LLM_FILTER_FINGERPRINT_KEY": "k", **(env or {})}, timeout=120)


def secret_example() -> tuple[str, str]:
    rule = next(r for r in load_ruleset([SHIPPED_PACKS], Fingerprinter(b"k")).rules if r.category is Category.SECRET)
    return rule.id, rule.examples.match[0]


def test_scan_denies_a_secret_and_prints_findings_without_the_value() -> None:
    rule_id, example = secret_example()
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": example}]}).encode()
    out = cli("scan", "-", "--provider", "openai", stdin=body)
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert result["decision"] == "deny" and result["status"] == 403
    f = next(f for f in result["findings"] if f["rule"] == rule_id)
    assert f["location"] == "messages[0].content" and f["fingerprint"].startswith("hmac-sha256:")
    assert set(f) >= {"rule", "category", "action", "location", "fingerprint"}
    assert example[f["start"]:f["end"]].encode() not in out.stdout + out.stderr


def test_scan_plain_text_file_and_clean_text(tmp_path: Path) -> None:
    clean = tmp_path / "notes.txt"
    clean.write_text("Refactor the parser; keep the public API stable.\n")
    out = cli("scan", str(clean))
    assert out.returncode == 0 and json.loads(out.stdout)["decision"] == "allow"


def test_scan_gzip_body_with_content_encoding(tmp_path: Path) -> None:
    import gzip

    _, example = secret_example()
    body = gzip.compress(json.dumps({"messages": [{"role": "user", "content": example}]}).encode())
    out = cli("scan", "-", "--provider", "openai", "--content-encoding", "gzip", stdin=body)
    assert out.returncode == 1 and json.loads(out.stdout)["reason"] == "secret_detected"


def test_rules_lint_clean_and_broken() -> None:
    ok = cli("rules", "lint", str(SHIPPED_PACKS))
    assert ok.returncode == 0, ok.stderr.decode()[-2000:]
    bad = cli("rules", "lint", str(INVALID / "hyperscan-refuses.yaml"))
    assert bad.returncode == 1
    assert bad.stderr.decode().strip() == (
        f"{INVALID / 'hyperscan-refuses.yaml'}:5: token-x: Hyperscan cannot compile pattern: "
        "Zero-width assertions are not supported.")


def test_rules_test_lists_rules_and_fails_on_a_broken_example() -> None:
    ok = cli("rules", "test", str(SHIPPED_PACKS))
    assert ok.returncode == 0 and b"examples: all hold" in ok.stdout
    bad = cli("rules", "test", str(INVALID / "example-fails.yaml"))
    assert bad.returncode == 1 and b"token-x: example does not match" in bad.stderr


def test_known_secrets_add_prints_fingerprints_only() -> None:
    out = cli("known-secrets", "add", stdin=b"canary-value-123\n\nsecond-value-456\n")
    lines = out.stdout.decode().split()
    assert out.returncode == 0 and len(lines) == 2 and all(x.startswith("hmac-sha256:") for x in lines)
    assert b"canary" not in out.stdout


def test_bad_config_is_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("workers: many\n")
    out = cli("scan", "-", "--config", str(cfg), stdin=b"hi")
    assert out.returncode == 2 and b"workers: 'many' is not of type 'integer'" in out.stderr


def test_known_secrets_add_needs_a_stable_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LLM_FILTER_FINGERPRINT_KEY"}
    out = subprocess.run([sys.executable, "-m", "filter", "known-secrets", "add"], input=b"x\n", capture_output=True,
                         cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 2 and b"no fingerprint key" in out.stderr
