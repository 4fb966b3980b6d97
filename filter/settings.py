"""Settings: config file + environment switches -> one frozen value, checked once.

The environment is read here and only here (`load_settings(env=...)`), so a test or a caller can inject it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from filter import strictyaml
from filter.errors import SettingsError
from filter.formats import DecodeLimits
from filter.rules import SHIPPED_PACKS
from filter.rules.dbcache import default_cache_dir

LOG_PROMPTS_MODES = ("metadata_only", "full", "none")
FINGERPRINT_KEY_ENV = "LLM_FILTER_FINGERPRINT_KEY"
USAGE_LISTEN_ENV = "LLM_FILTER_USAGE_LISTEN"  # overrides usage_listen (set by `serve` for each worker process)
REWRITER_LISTEN_ENV = "LLM_FILTER_REWRITER_LISTEN"  # overrides rewriter_listen (likewise)
CACHE_DIR_ENV = "LLM_FILTER_CACHE_DIR"  # overrides cache_dir; empty: no cache

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "listen": {"type": "string", "pattern": r"^[^:]+:\d+$"},
        "workers": {"type": "integer", "minimum": 1, "maximum": 64},
        "metrics_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "telemetry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_identity_values": {"type": "integer", "minimum": 0},
                "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
        },
        "packs": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "reload_interval_seconds": {"type": "number", "exclusiveMinimum": 0},
        "fingerprint_key_file": {"type": ["string", "null"]},
        "known_secrets": {"type": ["string", "null"]},
        "token_encoding_file": {"type": ["string", "null"]},
        "policy_file": {"type": ["string", "null"]},
        "cache_dir": {"type": "string"},
        "policy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "trust_identity_headers": {"type": "boolean"},
                "block_secrets": {"type": "boolean"},
                "block_pii": {"type": "boolean"},
                "pii_context": {"type": "boolean"},
                "redact_pii": {"type": "boolean"},
                "redact_secrets": {"type": "boolean"},
                "rehydrate": {"type": "boolean"},
                "max_prompt_tokens": {"type": "integer", "minimum": 1},
            },
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_body_bytes": {"type": "integer", "minimum": 1},
                "max_decompressed_bytes": {"type": "integer", "minimum": 1},
                "max_compression_ratio": {"type": "integer", "minimum": 1},
                "max_json_depth": {"type": "integer", "minimum": 2},
                "max_json_nodes": {"type": "integer", "minimum": 1},
                "max_check_cpu_seconds": {"type": "number", "exclusiveMinimum": 0},
                "max_inflight_bytes": {"type": "integer", "minimum": 1},
            },
        },
        "audit": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "log_prompts": {"enum": list(LOG_PROMPTS_MODES)},
                "path": {"type": "string"},
            },
        },
        "usage_listen": {"type": "string", "pattern": r"^[^:]+:\d+$"},
        "rewriter_listen": {"type": "string", "pattern": r"^[^:]+:\d+$"},
        "rewriter_max_streams": {"type": "integer", "minimum": 1, "maximum": 100000},
        "store": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "pattern": r"^(sqlite|redis|rediss|unix)://"},
                "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                "reservation_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                "timezone": {"type": "string", "minLength": 1},
            },
        },
        "rate_limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "domain": {"type": "string"},
                "workspace_requests_per_minute": {"type": "integer", "minimum": 0},
                "team_requests_per_minute": {"type": "integer", "minimum": 0},
                "overrides": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["key", "value", "requests_per_minute"],
                        "properties": {
                            "key": {"enum": ["workspace_id", "team_id"]},
                            "value": {"type": "string"},
                            "requests_per_minute": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class Policy:
    """What is enforced for every request; a policy file (filter/scopes.py) narrows it per team, project, workspace, agent."""

    trust_identity_headers: bool = True
    block_secrets: bool = True
    block_pii: bool = True
    pii_context: bool = True  # e-mail addresses in authorship lines (headers, git log, trailers) are logged, not blocked
    max_prompt_tokens: int = 128_000
    # Redaction (docs/redaction.md): PII that does not block (block_pii off) is replaced by placeholders in the
    # body the provider receives; secrets that do not block (block_secrets off, not critical) too when
    # redact_secrets is on. `rehydrate` puts the values back into the provider's answer.
    redact_pii: bool = True
    redact_secrets: bool = False
    rehydrate: bool = False


@dataclass(frozen=True, slots=True)
class RateLimits:
    domain: str = "llm-gateway"
    workspace_requests_per_minute: int = 0  # 0 = unlimited
    team_requests_per_minute: int = 0
    overrides: tuple[tuple[str, str, int], ...] = ()  # (descriptor key, value, requests per minute)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The shared store of request counts and token budgets (filter/store): one SQLite file per host or one Redis
    for all replicas. Absent from the config: no store, counts stay in each worker's memory."""

    url: str = field(repr=False)  # a Redis URL may carry a password
    timeout_seconds: float = 0.5  # one store call, Redis round trip or SQLite lock wait
    reservation_timeout_seconds: float = 900.0  # an unsettled reservation is charged in full after this
    timezone: str = "UTC"  # budget days and months start at local midnight here


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:9001"
    workers: int = 1
    metrics_port: int = 9464
    max_identity_values: int = 200  # telemetry.max_identity_values: spelled identity values per metric level
    metric_models: tuple[str, ...] = ()  # telemetry.models: model names spelled as metric labels
    packs: tuple[str, ...] = (str(SHIPPED_PACKS),)
    reload_interval_seconds: float = 1.0
    fingerprint_key_file: str | None = None
    fingerprint_key: str | None = field(default=None, repr=False)  # from LLM_FILTER_FINGERPRINT_KEY; never logged
    known_secrets: str | None = None
    token_encoding_file: str | None = None
    policy_file: str | None = None  # per-scope policy (filter.scopes); None: the global `policy` only
    log_prompts: str = "metadata_only"
    audit_path: str = "-"
    policy: Policy = field(default_factory=Policy)
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    store: StoreSettings | None = None
    usage_listen: str | None = None  # HOST:PORT of the first worker's usage observer (ext_proc); None: none
    # HOST:PORT of the first worker's redaction rewriter (ext_proc); None: none, a value to redact is refused
    rewriter_listen: str | None = None
    rewriter_max_streams: int = 1024  # open rewriter streams per worker; more are refused (503, retry)
    config_file: str | None = None
    # Compiled rule databases (filter/rules/dbcache.py); None: no cache. load_settings defaults it per user.
    cache_dir: str | None = None

    @property
    def watched_files(self) -> tuple[str, ...]:
        """Files whose change triggers a reload."""
        from filter.rules import expand_pack_paths

        files = [str(p) for p in expand_pack_paths(self.packs)]
        files += [f for f in (self.config_file, self.known_secrets, self.policy_file) if f]
        return tuple(files)


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any), validate it, then apply BLOCK_SECRETS, BLOCK_PII, REDACT_PII, REDACT_SECRETS,
    MAX_PROMPT_TOKENS, LOG_PROMPTS, LLM_FILTER_FINGERPRINT_KEY, LLM_FILTER_USAGE_LISTEN and LLM_FILTER_REWRITER_LISTEN
    from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base = Path(".")
    if path:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise SettingsError(f"{path}: cannot read config: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{path}: cannot read config: not UTF-8 text") from None
        try:
            loaded = strictyaml.load(text)  # plain data only: no tags, bounded aliases
        except strictyaml.YAMLRefused as e:
            raise SettingsError(f"{path}:{e.line}: {e.message}") from None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e)
            raise SettingsError(f"{path}:{strictyaml.error_line(e)}: not valid YAML: {problem}") from None
        except RecursionError:
            raise SettingsError(f"{path}: nested too deeply") from None
        raw = loaded if loaded is not None else {}
        if isinstance(raw, dict) and isinstance(raw.get("store"), dict) and "fail_open" in raw["store"]:
            raise SettingsError(f"{path}: store.fail_open is no longer read: what a request gets while the store "
                                "cannot answer is the policy file's `on_store_error` (deny or allow), for rate "
                                "limits and budgets alike")
        try:
            jsonschema.validate(raw, _SCHEMA)
        except jsonschema.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
            raise SettingsError(f"{path}: {where}: {e.message}") from None
        base = Path(path).parent

    def rel(p: str | None) -> str | None:
        return None if p is None else str(p if Path(p).is_absolute() else base / p)

    pol = raw.get("policy", {})
    lim = raw.get("limits", {})
    aud = raw.get("audit", {})
    rl = raw.get("rate_limits", {})
    st = raw.get("store")
    usage_listen = env.get(USAGE_LISTEN_ENV) or raw.get("usage_listen")
    if usage_listen is not None and not re.fullmatch(r"[^:]+:\d+", usage_listen):
        raise SettingsError(f"{USAGE_LISTEN_ENV} must be HOST:PORT, not {usage_listen!r}")
    rewriter_listen = env.get(REWRITER_LISTEN_ENV) or raw.get("rewriter_listen")
    if rewriter_listen is not None and not re.fullmatch(r"[^:]+:\d+", rewriter_listen):
        raise SettingsError(f"{REWRITER_LISTEN_ENV} must be HOST:PORT, not {rewriter_listen!r}")
    if st is not None:
        try:
            ZoneInfo(st.get("timezone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{path}: store.timezone: unknown time zone {st['timezone']!r}") from None
    max_tokens_env = env.get("MAX_PROMPT_TOKENS")
    max_tokens = pol.get("max_prompt_tokens", 128_000)
    if max_tokens_env:
        if not max_tokens_env.isdigit() or int(max_tokens_env) < 1:
            raise SettingsError(f"MAX_PROMPT_TOKENS must be a positive integer, not {max_tokens_env!r}")
        max_tokens = int(max_tokens_env)
    log_prompts = env.get("LOG_PROMPTS") or aud.get("log_prompts", "metadata_only")
    if log_prompts not in LOG_PROMPTS_MODES:
        raise SettingsError(f"LOG_PROMPTS must be one of {', '.join(LOG_PROMPTS_MODES)}, not {log_prompts!r}")
    defaults = DecodeLimits()
    packs = tuple(rel(p) or p for p in raw["packs"]) if "packs" in raw else Settings().packs
    cache_dir = env.get(CACHE_DIR_ENV, rel(raw.get("cache_dir")) if "cache_dir" in raw else default_cache_dir(env))
    return Settings(
        listen=raw.get("listen", "127.0.0.1:9001"),
        workers=raw.get("workers", 1),
        metrics_port=raw.get("metrics_port", 9464),
        max_identity_values=raw.get("telemetry", {}).get("max_identity_values", 200),
        metric_models=tuple(raw.get("telemetry", {}).get("models", ())),
        packs=packs,
        reload_interval_seconds=float(raw.get("reload_interval_seconds", 1.0)),
        fingerprint_key_file=rel(raw.get("fingerprint_key_file")),
        fingerprint_key=env.get(FINGERPRINT_KEY_ENV) or None,
        known_secrets=rel(raw.get("known_secrets")),
        token_encoding_file=rel(raw.get("token_encoding_file")),
        policy_file=rel(raw.get("policy_file")),
        log_prompts=log_prompts,
        audit_path=aud.get("path", "-"),
        policy=Policy(
            trust_identity_headers=pol.get("trust_identity_headers", True),
            block_secrets=_env_bool(env, "BLOCK_SECRETS", pol.get("block_secrets", True)),
            block_pii=_env_bool(env, "BLOCK_PII", pol.get("block_pii", True)),
            pii_context=pol.get("pii_context", True),
            max_prompt_tokens=max_tokens,
            redact_pii=_env_bool(env, "REDACT_PII", pol.get("redact_pii", True)),
            redact_secrets=_env_bool(env, "REDACT_SECRETS", pol.get("redact_secrets", False)),
            rehydrate=pol.get("rehydrate", False),
        ),
        limits=DecodeLimits(
            max_body_bytes=lim.get("max_body_bytes", defaults.max_body_bytes),
            max_decompressed_bytes=lim.get("max_decompressed_bytes", defaults.max_decompressed_bytes),
            max_compression_ratio=lim.get("max_compression_ratio", defaults.max_compression_ratio),
            max_json_depth=lim.get("max_json_depth", defaults.max_json_depth),
            max_json_nodes=lim.get("max_json_nodes", defaults.max_json_nodes),
            max_check_cpu_seconds=float(lim.get("max_check_cpu_seconds", defaults.max_check_cpu_seconds)),
            max_inflight_bytes=lim.get("max_inflight_bytes", defaults.max_inflight_bytes),
        ),
        rate_limits=RateLimits(
            domain=rl.get("domain", "llm-gateway"),
            workspace_requests_per_minute=rl.get("workspace_requests_per_minute", 0),
            team_requests_per_minute=rl.get("team_requests_per_minute", 0),
            overrides=tuple((o["key"], o["value"], o["requests_per_minute"]) for o in rl.get("overrides", [])),
        ),
        store=None if st is None else StoreSettings(
            url=st["url"],
            timeout_seconds=float(st.get("timeout_seconds", 0.5)),
            reservation_timeout_seconds=float(st.get("reservation_timeout_seconds", 900.0)),
            timezone=st.get("timezone", "UTC"),
        ),
        usage_listen=usage_listen,
        rewriter_listen=rewriter_listen,
        rewriter_max_streams=raw.get("rewriter_max_streams", 1024),
        config_file=path,
        cache_dir=cache_dir or None,
    )
