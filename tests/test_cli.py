"""The CLI as an author runs it: real processes, real exit codes, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filter.model import Category
from filter.rules import SHIPPED_PACKS, Fingerprinter, load_ruleset
from tests.support.ports import free_port, listening_socket

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
    assert result["decision"] == "deny" and result["status"] == 400
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
        f"{INVALID / 'hyperscan-refuses.yaml'}:8: token-x: Hyperscan cannot compile pattern: "
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


OWN_PACK = """pack: mine
version: 1
rules:
  - id: acme-deploy-key
    category: secret
    description: ACME deploy key
    pattern: 'acmedk_[a-z0-9]{16}'
    examples: {match: ['acmedk_k3j9x2m7q1w8p4z6'], no_match: ['acmedk_']}
"""


def no_key_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LLM_FILTER_FINGERPRINT_KEY"}


def run_bare(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """The CLI without a fingerprint key in the environment, as a user first runs it."""
    return subprocess.run([sys.executable, "-m", "filter", *args], input=stdin, capture_output=True, cwd=ROOT,
                          env=no_key_env(), timeout=timeout)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["scan", "missing.json"], 2, "error: cannot read missing.json: No such file or directory"),
        (["scan", "filter"], 2, "error: cannot read filter: it is a directory"),
        (["scan", "-", "--config", "/nonexistent/c.yaml"], 2,
         "error: /nonexistent/c.yaml: cannot read config: No such file or directory"),
        (["scan", "-", "--bogus"], 2, "llm-content-filter: error: unrecognized arguments: --bogus "
                                      "(see llm-content-filter --help)"),
        (["scan", "-", "--provider"], 2,
         "llm-content-filter scan: error: argument --provider: expected one argument (see llm-content-filter scan --help)"),
        (["scan", "--packs", "a.yaml", "body.json"], 2,
         "llm-content-filter scan: error: --packs was replaced by --pack FILE (repeatable; adds to the configured "
         "packs) and --only-packs (use only the --pack files) (see llm-content-filter scan --help)"),
        (["scan", "-", "--only-packs"], 2, "error: --only-packs needs at least one --pack FILE"),
        (["serve", "--workers", "0"], 2, "error: --workers must be at least 1, not 0"),
        (["serve", "--listen", "nowhere"], 2, "error: --listen must be HOST:PORT, not 'nowhere'"),
        (["rules", "lint", "missing.yaml"], 1, "missing.yaml:0: -: cannot read pack: No such file or directory"),
        (["known-secrets", "add"], 2,
         "error: no fingerprint key: set LLM_FILTER_FINGERPRINT_KEY or fingerprint_key_file in the config"),
    ],
)
def test_user_mistakes_are_one_line_and_a_documented_exit_code(args: list[str], code: int, message: str) -> None:
    out = run_bare(*args, stdin=b"hello")
    assert (out.returncode, out.stderr.decode().strip()) == (code, message)
    assert out.stdout == b""


def test_config_with_a_yaml_tag_or_alias_bomb_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("workers: !!python/object/apply:os.getpid []\n")
    out = run_bare("scan", "-", "--config", str(cfg))
    assert (out.returncode, out.stderr.decode().strip()) == (
        2, f"error: {cfg}:1: YAML tags are not allowed (tag:yaml.org,2002:python/object/apply:os.getpid)")


def test_scan_adds_own_packs_beside_the_shipped_ones_or_uses_only_them(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(OWN_PACK)
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"messages": [{"role": "user", "content":
                                              "deploy acmedk_k3j9x2m7q1w8p4z6 with AKIAZ5XQ3HR2LMNPQ7TW"}]}))
    both = cli("scan", "--pack", str(mine), str(body))
    assert both.returncode == 1, both.stderr
    assert {f["rule"] for f in json.loads(both.stdout)["findings"]} == {"acme-deploy-key", "aws-access-key-id"}
    only = cli("scan", "--pack", str(mine), "--only-packs", str(body))
    assert {f["rule"] for f in json.loads(only.stdout)["findings"]} == {"acme-deploy-key"}


def test_scan_with_a_broken_extra_pack_names_it(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(OWN_PACK.replace("pattern: 'acmedk_[a-z0-9]{16}'", "pattern: !!python/name:os.system"))
    out = cli("scan", "--pack", str(mine), "-", stdin=b"hi")
    assert (out.returncode, out.stderr.decode().strip()) == (
        2, f"{mine}:7: -: YAML tags are not allowed (tag:yaml.org,2002:python/name:os.system)")


def test_one_shot_scan_does_not_warn_about_the_fingerprint_key() -> None:
    out = run_bare("scan", "-", stdin=b"Refactor the parser.")
    assert out.returncode == 0 and out.stderr == b""


def test_scan_infers_the_provider_from_the_body_shape() -> None:
    gemini = {"contents": [{"role": "user", "parts": [{"text": "key AKIAZ5XQ3HR2LMNPQ7TW"}]}]}
    anthropic = {"model": "claude", "max_tokens": 5, "system": "be brief",
                 "messages": [{"role": "user", "content": "key AKIAZ5XQ3HR2LMNPQ7TW"}]}
    openai = {"model": "gpt-4o", "messages": [{"role": "user", "content": "key AKIAZ5XQ3HR2LMNPQ7TW"}]}
    for body, provider, location in ((gemini, "gemini", "contents[0].parts[0].text"),
                                     (anthropic, "anthropic", "messages[0].content"),
                                     (openai, "openai", "messages[0].content")):
        result = json.loads(cli("scan", "-", stdin=json.dumps(body).encode()).stdout)
        assert (result["provider"], result["findings"][0]["location"]) == (provider, location)
    text = json.loads(cli("scan", "-", stdin=b"key AKIAZ5XQ3HR2LMNPQ7TW").stdout)
    assert (text["provider"], text["findings"][0]["location"]) == ("raw", "body")


def test_rules_lint_reports_every_problem_in_every_file_in_one_run(tmp_path: Path) -> None:
    sources = ["hyperscan-refuses.yaml", "example-fails.yaml", "bad-category.yaml"]
    for source in sources:
        text = (INVALID / source).read_text()
        (tmp_path / source).write_text(text.replace("token-x", source.removesuffix(".yaml")))
    out = cli("rules", "lint", *(str(tmp_path / s) for s in sources), str(tmp_path / sources[0]))
    assert out.returncode == 1
    assert out.stderr.decode().replace(f"{tmp_path}/", "").splitlines() == [
        "hyperscan-refuses.yaml:8: hyperscan-refuses: Hyperscan cannot compile pattern: "
        "Zero-width assertions are not supported.",
        "example-fails.yaml:9: example-fails: example does not match: 'x_QWHDKEUZMA' (regex did not match)",
        "bad-category.yaml:6: bad-category: category must be secret | pii | file, not 'password'",
    ]


def test_serve_on_a_busy_port_says_which_one() -> None:
    with listening_socket() as held:
        port = held.getsockname()[1]
        out = run_bare("serve", "--listen", f"127.0.0.1:{port}", "--metrics-port", "0")
        assert (out.returncode, out.stderr.decode().strip().splitlines()[-1]) == (
            3, f"error: cannot listen on 127.0.0.1:{port} (--listen): the port is in use by another process")
        metrics = held.getsockname()[1]
        out = run_bare("serve", "--listen", f"127.0.0.1:{free_port()}", "--metrics-port", str(metrics))
        assert (out.returncode, out.stderr.decode().strip().splitlines()[-1]) == (
            3, f"error: cannot listen on 127.0.0.1:{metrics} (--metrics-port): the port is in use by another process")
    assert b"Traceback" not in out.stderr


def test_serve_with_a_bad_pack_exits_2_with_the_pack_error(tmp_path: Path) -> None:
    mine = tmp_path / "packs" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text(OWN_PACK.replace("pattern: 'acmedk_[a-z0-9]{16}'", "pattern: !!python/name:os.system"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("packs: [packs/]\n")
    out = cli("serve", "--config", str(cfg), "--listen", f"127.0.0.1:{free_port()}", "--metrics-port", "0")
    assert out.returncode == 2
    assert out.stderr.decode().strip() == f"{mine}:7: -: YAML tags are not allowed (tag:yaml.org,2002:python/name:os.system)"


def test_a_bad_token_encoding_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("token_encoding_file: vocab.tiktoken\n")
    (tmp_path / "vocab.tiktoken").write_text("not base64 rank\n")
    out = cli("scan", "-", "--config", str(cfg), stdin=b"hi")
    assert out.returncode == 2
    assert out.stderr.decode().startswith(f"error: token_encoding_file {tmp_path / 'vocab.tiktoken'}: cannot load: ")
    assert len(out.stderr.decode().strip().splitlines()) == 1


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from filter import cli as cli_module

    def boom(_args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli_module, "_scan", boom)
    assert cli_module.main(["scan", "-"]) == 3
    assert capsys.readouterr().err == "error: unexpected RuntimeError: disk on fire (run with --debug for the traceback)\n"
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli_module.main(["scan", "-", "--debug"])


def test_serve_with_the_rewriter_port_taken_says_so(tmp_path: Path) -> None:
    with listening_socket() as held:
        port = held.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"rewriter_listen: 127.0.0.1:{port}\n")
        out = run_bare("serve", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}", "--metrics-port", "0")
        assert (out.returncode, out.stderr.decode().strip().splitlines()[-1]) == (
            3, f"error: cannot listen on 127.0.0.1:{port} (rewriter_listen): the port is in use by another process")
        # with two workers the second one rewrites on PORT + 1
        config.write_text(f"rewriter_listen: 127.0.0.1:{port - 1}\n")
        out = run_bare("serve", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}", "--workers", "2",
                       "--metrics-port", "0")
        assert (out.returncode, out.stderr.decode().strip().splitlines()[-1]) == (
            3, f"error: cannot listen on 127.0.0.1:{port} (rewriter_listen of worker 2): the port is in use by another"
               " process")
