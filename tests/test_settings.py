"""Config file + the environment switches (BLOCK_SECRETS, BLOCK_PII, MAX_PROMPT_TOKENS, LOG_PROMPTS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filter.errors import SettingsError
from filter.rules import SHIPPED_PACKS
from filter.settings import load_settings


def test_defaults_serve_shipped_packs_with_trusted_headers() -> None:
    s = load_settings(None, env={})
    assert s.listen == "127.0.0.1:9001" and s.workers == 1
    assert s.packs == (str(SHIPPED_PACKS),)
    assert s.policy.trust_identity_headers and s.policy.block_secrets and s.policy.block_pii
    assert s.policy.max_prompt_tokens == 128_000 and s.log_prompts == "metadata_only"
    assert s.limits.max_body_bytes == 16 * 1024 * 1024


def test_seed_environment_switches_override_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("policy: {block_pii: true, max_prompt_tokens: 5}\naudit: {log_prompts: full}\n")
    s = load_settings(str(cfg), env={"BLOCK_SECRETS": "false", "BLOCK_PII": "0", "MAX_PROMPT_TOKENS": "4000",
                                     "LOG_PROMPTS": "none"})
    assert (s.policy.block_secrets, s.policy.block_pii, s.policy.max_prompt_tokens, s.log_prompts) == (
        False, False, 4000, "none")


def test_pack_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("packs: [packs/]\n")
    assert load_settings(str(cfg), env={}).packs == (str(tmp_path / "packs"),)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("workers: 0\n", {}, "workers: 0 is less than the minimum of 1"),
        ("polcy: {}\n", {}, "(top level): Additional properties are not allowed ('polcy' was unexpected)"),
        ("listen: 9001\n", {}, "listen: 9001 is not of type 'string'"),
        ("{}\n", {"BLOCK_PII": "maybe"}, "BLOCK_PII must be true or false, not 'maybe'"),
        ("{}\n", {"MAX_PROMPT_TOKENS": "-3"}, "MAX_PROMPT_TOKENS must be a positive integer, not '-3'"),
        ("{}\n", {"LOG_PROMPTS": "all"}, "LOG_PROMPTS must be one of metadata_only, full, none, not 'all'"),
        ("listen: !!python/object/apply:os.getcwd []\n", {},
         ":1: YAML tags are not allowed (tag:yaml.org,2002:python/object/apply:os.getcwd)"),
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
         "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", {}, ":1: aliases expand to too much data (billion-laughs shape)"),
        ("listen: [\n", {}, ":2: not valid YAML: did not find expected node content"),
    ],
)
def test_bad_settings_say_what_is_wrong(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(str(cfg), env=env)
    assert str(info.value).endswith(message)


def test_the_fingerprint_key_is_read_from_the_injected_environment_only() -> None:
    assert load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "org-key"}).fingerprint_key == "org-key"
    assert load_settings(None, env={}).fingerprint_key is None
    assert "org-key" not in repr(load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "org-key"}))


def test_rewriter_listen_from_the_file_or_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rewriter_listen: 127.0.0.1:9201\nrewriter_max_streams: 64\n")
    settings = load_settings(str(config), env={})
    assert (settings.rewriter_listen, settings.rewriter_max_streams) == ("127.0.0.1:9201", 64)
    assert load_settings(str(config), env={"LLM_FILTER_REWRITER_LISTEN": "0.0.0.0:9300"}).rewriter_listen == \
        "0.0.0.0:9300"
    plain = load_settings(None, env={})
    assert plain.rewriter_listen is None and plain.rewriter_max_streams == 1024  # absent: no rewriter
    for bad in ("rewriter_listen: 9201", "rewriter_max_streams: 0"):
        config.write_text(bad + "\n")
        with pytest.raises(SettingsError, match="rewriter"):
            load_settings(str(config), env={})
    with pytest.raises(SettingsError, match="LLM_FILTER_REWRITER_LISTEN must be HOST:PORT"):
        load_settings(None, env={"LLM_FILTER_REWRITER_LISTEN": "9201"})
