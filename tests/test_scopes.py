"""The policy file: scope resolution and inheritance, allowed providers/models/paths, rule overrides, lint
messages with their line, and hot reload that keeps the last good policy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from filter.cli import main
from filter.model import Action, Category, Envelope, Finding, Identity, Mode, Severity
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.scopes import PolicyFile, PolicyFileError, check_text, load_policy, resolve
from filter.settings import Policy, load_settings
from filter.store import Budget, Window
from filter.tokens import TokenCounter, load_encoding

POLICY = textwrap.dedent("""\
    timezone: Europe/Berlin
    default_max_output_tokens: 2048
    default:
      providers: [anthropic, openai]
      models: ["claude-*", "gpt-4o*"]
      max_prompt_tokens: 100000
      rules: {email-address: log}
      requests_per_minute: 600
      budgets: {monthly_tokens: 50000000}
    teams:
      payments:
        models: ["claude-sonnet-*"]
        block_pii: false
        rules: {generic-api-key: shadow}
        budgets: {daily_tokens: 2000000}
      "lab-*":
        providers: [gemini]
        models: ["gemini-*"]
    projects:
      checkout:
        max_prompt_tokens: 50000
    workspaces:
      ws-ci:
        paths: ["/v1/messages"]
        requests_per_minute: 60
    agents:
      "*":
        budgets: {daily_tokens: 300000}
      ci-bot:
        models: ["claude-haiku-*"]
        block_pii: true
    """)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicyFile:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(str(path))


def test_without_identity_the_default_scope_applies(policy: PolicyFile) -> None:
    scope = resolve(policy, Identity())
    assert scope.name == "default"
    assert scope.providers == ("anthropic", "openai") and scope.models == ("claude-*", "gpt-4o*")
    assert scope.paths is None and scope.max_prompt_tokens == 100000 and scope.requests_per_minute == 600
    assert scope.rules == {"email-address": "log"}
    assert scope.budgets == (Budget("all", Window.MONTH, 50_000_000),)


def test_each_field_is_inherited_and_the_most_specific_scope_wins(policy: PolicyFile) -> None:
    scope = resolve(policy, Identity(team="payments", project="checkout", workspace="ws-ci", agent="ci-bot"))
    assert scope.name == "agent ci-bot"
    assert scope.providers == ("anthropic", "openai") and scope.origin["providers"] == "default"
    assert scope.models == ("claude-haiku-*",) and scope.origin["models"] == "agent ci-bot"
    assert scope.max_prompt_tokens == 50000 and scope.origin["max_prompt_tokens"] == "project checkout"
    assert scope.paths == ("/v1/messages",) and scope.requests_per_minute == 60
    assert scope.block_pii is True  # the team turned it off, the agent back on
    assert scope.rules == {"email-address": "log", "generic-api-key": "shadow"}  # merged rule by rule


def test_every_applicable_scope_has_its_own_budget_most_specific_first(policy: PolicyFile) -> None:
    scope = resolve(policy, Identity(team="payments", workspace="ws-other", agent="ci-bot"))
    assert scope.budgets == (Budget("agent:ci-bot", Window.DAY, 300_000), Budget("team:payments", Window.DAY, 2_000_000),
                             Budget("all", Window.MONTH, 50_000_000))


def test_a_glob_entry_matches_ids_and_an_exact_entry_is_preferred(policy: PolicyFile) -> None:
    lab = resolve(policy, Identity(team="lab-vision", agent="other-bot"))
    assert lab.providers == ("gemini",) and lab.origin["providers"] == "team lab-vision"
    assert Budget("agent:other-bot", Window.DAY, 300_000) in lab.budgets  # "*" gives each agent its own budget
    assert resolve(policy, Identity(agent="ci-bot")).models == ("claude-haiku-*",)


@pytest.mark.parametrize(("identity", "provider", "model", "path", "reason", "named"), [
    (Identity(), "openai", "gpt-4o-mini", "/v1/chat/completions", None, ""),
    (Identity(), "gemini", "gemini-2.5-pro", "/v1beta/models/x:generateContent", "provider_not_allowed", "default"),
    (Identity(team="payments"), "openai", "gpt-4o", "/v1/chat/completions", "model_not_allowed", "team payments"),
    (Identity(team="payments"), "anthropic", "claude-sonnet-4-5", "/v1/messages", None, ""),
    (Identity(team="payments"), "anthropic", None, "/v1/messages", "model_not_allowed", "team payments"),
    (Identity(workspace="ws-ci"), "anthropic", "claude-sonnet-4", "/v1/messages/count_tokens?beta=true",
     "path_not_allowed", "workspace ws-ci"),
    (Identity(workspace="ws-ci"), "anthropic", "claude-sonnet-4", "/v1/messages?beta=true", None, ""),
])
def test_requests_outside_the_scope_are_refused_naming_the_policy(
        policy: PolicyFile, identity: Identity, provider: str, model: str | None, path: str, reason: str | None,
        named: str) -> None:
    refusal = resolve(policy, identity).refusal(provider, model, path)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal[0] == reason
        assert f"not allowed by the gateway policy for {named} (allowed: " in refusal[1]


def test_scope_switches_and_rule_actions_apply() -> None:
    policy, _ = check_text("default: {block_secrets: false, max_prompt_tokens: 10}\n"
                           "agents: {a: {rules: {r1: block, r2: log, r3: shadow}}}\n", "p.yaml")
    assert policy is not None
    scope = resolve(policy, Identity(agent="a"))
    assert scope.policy(Policy()) == Policy(block_secrets=False, max_prompt_tokens=10)
    f = Finding("r1", Category.PII, Action.LOG, Severity.LOW, Mode.SHADOW, "m", 0, 1, "fp")
    assert (scope.finding(f).action, scope.finding(f).mode) == (Action.BLOCK, Mode.ENFORCE)
    f2 = Finding("r2", Category.SECRET, Action.BLOCK, Severity.HIGH, Mode.ENFORCE, "m", 0, 1, "fp")
    assert scope.finding(f2).action is Action.LOG
    f3 = Finding("r3", Category.SECRET, Action.BLOCK, Severity.HIGH, Mode.ENFORCE, "m", 0, 1, "fp")
    assert scope.finding(f3).mode is Mode.SHADOW
    f4 = Finding("other", Category.SECRET, Action.BLOCK, Severity.HIGH, Mode.ENFORCE, "m", 0, 1, "fp")
    assert scope.finding(f4) == f4


BAD = textwrap.dedent("""\
    default:
      providers: [anthropic, openia]
      max_prompt_tokens: -5
    teams:
      payments:
        budgets: {daily_tokens: 10, weekly_tokens: 3}
        rules: {email-address: allow}
    colour: blue
    """)


def test_lint_names_every_problem_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BAD)
    assert main(["policy", "lint", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5, out
    lines = [int(line.split(":")[1]) for line in out]
    assert lines == [2, 3, 6, 7, 8]
    assert all(line.startswith(f"{path}:") for line in out)
    assert "'openia' is not one of" in out[0] and "weekly_tokens" in out[2] and "colour" in out[4]


def test_lint_of_a_good_file_a_yaml_error_and_an_unreadable_file(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(POLICY)
    assert main(["policy", "lint", str(good)]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("default:\n  models: [a\n")
    assert main(["policy", "lint", str(broken)]) == 1
    assert f"{broken}:" in capsys.readouterr().out
    tz = tmp_path / "tz.yaml"
    tz.write_text("default: {}\ntimezone: Mars/Olympus\n")
    assert main(["policy", "lint", str(tz)]) == 1
    assert f"{tz}:2: timezone: unknown IANA time zone 'Mars/Olympus'" in capsys.readouterr().out
    assert main(["policy", "lint", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read policy file" in capsys.readouterr().err


def test_load_policy_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BAD)
    with pytest.raises(PolicyFileError) as e:
        load_policy(str(path))
    assert len(e.value.problems) == 5


COUNTER = TokenCounter(load_encoding())


def chat(model: str) -> Envelope:
    body = f'{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}'.encode()
    return Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body)


def test_policy_file_is_hot_reloaded_and_a_bad_change_keeps_the_last_good_one(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('default: {models: ["gpt-4o"]}\n')
    cfg = tmp_path / "config.yaml"
    cfg.write_text("policy_file: policy.yaml\n")
    settings = load_settings(str(cfg), env={})
    assert settings.policy_file == str(policy) and str(policy) in settings.watched_files
    events: list[tuple[str, str]] = []
    runtime = Runtime(str(cfg), settings, on_reload=lambda r, d: events.append((r, d)), warn_random_key=False)
    assert evaluate(chat("gpt-4o"), runtime.current, COUNTER).decision.allowed
    refused = evaluate(chat("gpt-4.1"), runtime.current, COUNTER).decision
    assert (refused.http_status, refused.reason) == (403, "model_not_allowed")
    assert "not allowed by the gateway policy for default" in refused.message

    policy.write_text('default: {models: ["gpt-4.1"]}\n')
    assert runtime.changed() and runtime.reload()
    assert evaluate(chat("gpt-4.1"), runtime.current, COUNTER).decision.allowed

    policy.write_text('default: {models: "gpt-4o"}\n')  # not a list: refused, the last good one stays
    assert runtime.changed() and not runtime.reload()
    assert events[-1][0] == "error" and f"{policy}:1: default.models" in events[-1][1]
    assert evaluate(chat("gpt-4.1"), runtime.current, COUNTER).decision.allowed


def test_without_a_policy_file_nothing_changes(tmp_path: Path) -> None:
    runtime = Runtime(None, load_settings(None, env={}), warn_random_key=False)
    assert runtime.current.policy is None
    outcome = evaluate(chat("any-model-at-all"), runtime.current, COUNTER)
    assert outcome.decision.allowed and outcome.scope is None


def runtime_with(tmp_path: Path, policy: str, config: str = "") -> Runtime:
    (tmp_path / "policy.yaml").write_text(policy)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"policy_file: policy.yaml\n{config}")
    return Runtime(str(cfg), load_settings(str(cfg), env={}), warn_random_key=False)


def test_a_rule_action_override_changes_the_decision_for_that_scope_only(tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path, "agents: {support-bot: {rules: {email-address: log}}}\n")
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"reply to jane.roe@northwind-traders.com please"}]}'
    envelope = Envelope("POST", "/v1/chat/completions", {"content-type": "application/json"}, body)
    assert evaluate(envelope, runtime.current, COUNTER).decision.reason == "pii_detected"
    logged = evaluate(envelope, runtime.current, COUNTER, Identity(agent="support-bot", source="jwt")).decision
    assert logged.allowed and logged.findings[0].rule_id == "email-address"


def test_an_unknown_rule_id_or_a_second_time_zone_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match=r"teams\.t1\.rules: no loaded pack has a rule 'emial-address'"):
        runtime_with(tmp_path, "teams: {t1: {rules: {emial-address: log}}}\n")
    with pytest.raises(PolicyFileError, match="differs from the config's store.timezone 'UTC'"):
        runtime_with(tmp_path, "timezone: Europe/Berlin\n", f"store: {{url: 'sqlite:///{tmp_path}/s.db'}}\n")
    assert runtime_with(tmp_path, "timezone: UTC\n", f"store: {{url: 'sqlite:///{tmp_path}/s.db'}}\n").current.policy


def test_the_documented_example_loads_against_the_shipped_packs(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "policy.md").read_text()
    example = next(block.split("\n", 1)[1] for block in doc.split("```yaml\n")[1:] if block.startswith("# policy.yaml"))
    runtime = runtime_with(tmp_path, example.split("```", 1)[0],
                           f"store: {{url: 'sqlite:///{tmp_path}/s.db', timezone: Europe/Berlin}}\n")
    assert runtime.current.policy is not None
    scope = resolve(runtime.current.policy, Identity(team="payments", agent="release-bot"))
    assert scope.models == ("claude-haiku-*",) and scope.rules["email-address"] == "log"
    assert Budget("agent:release-bot", Window.DAY, 500_000) in scope.budgets


def test_lint_with_a_config_checks_rule_ids_against_its_packs(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("agents: {a: {rules: {email-adress: log}}}\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("policy_file: policy.yaml\n")
    assert main(["policy", "lint", str(policy)]) == 0  # alone, any rule id may be meant
    capsys.readouterr()
    assert main(["policy", "lint", str(policy), "--config", str(cfg)]) == 1
    assert "agents.a.rules: no loaded pack has a rule 'email-adress'" in capsys.readouterr().out


def test_the_local_stack_budget_example_lints_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """`FILTER_CONFIG=envoy/local-budgets.yaml make run` (README) must keep loading as the server loads it."""
    envoy = Path(__file__).resolve().parents[1] / "envoy"
    code = main(["policy", "lint", str(envoy / "local-policy.yaml"), "--config", str(envoy / "local-budgets.yaml")])
    assert code == 0, capsys.readouterr()
