"""Credential injection: the gateway sends a team's provider key, read from a mounted secret file, and drops the
client's.

A scope's `credentials` maps a provider to a key file (`credentials: {openai: /var/run/secrets/llm/openai-team-a}`).
Key files are read when the policy file is loaded or reloaded; the key itself is never logged, audited, counted
or written into an error (only the file's path and the scope that names it). On allow the filter sets the
provider's key header and removes every other key a client may have sent (`authorization`, `x-api-key`,
`api-key`, `x-goog-api-key`, the `key` query parameter), through ext_authz's request mutations. Bedrock is signed
by the gateway already (SigV4, envoy/README.md), so it takes no key here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filter.errors import ConfigError
from filter.formats.routes import PROVIDERS

# provider -> (header, value prefix) the provider reads its key from
KEY_HEADERS: Mapping[str, tuple[str, str]] = {
    "openai": ("authorization", "Bearer "),
    "mistral": ("authorization", "Bearer "),
    "groq": ("authorization", "Bearer "),
    "anthropic": ("x-api-key", ""),
    "azure": ("api-key", ""),
    "gemini": ("x-goog-api-key", ""),
}
CLIENT_KEY_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
CLIENT_KEY_QUERY = ("key",)  # Gemini's `?key=`
MAX_KEY_BYTES = 8192

SCOPE_PROPERTIES: dict[str, Any] = {
    "credentials": {"type": "object", "propertyNames": {"enum": sorted(PROVIDERS)},
                    "additionalProperties": {"type": "string", "minLength": 1}},
}


@dataclass(frozen=True, slots=True)
class Secret:
    """A provider key. Its repr and str never show it; only `value` does, where the header is built."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "Secret(...)"


@dataclass(frozen=True, slots=True)
class Injection:
    set_headers: tuple[tuple[str, str], ...] = field(repr=False)
    remove_headers: tuple[str, ...]
    remove_query: tuple[str, ...]


def injection(provider: str, key: Secret) -> Injection:
    """The request mutations that replace any client key with `key` for `provider`."""
    header, prefix = KEY_HEADERS[provider]
    return Injection(((header, prefix + key.value),), tuple(h for h in CLIENT_KEY_HEADERS if h != header),
                     CLIENT_KEY_QUERY)


def check(raw: Mapping[str, Any], scopes: Sequence[tuple[str, list[str | int]]],
          line: Callable[[Sequence[str | int]], int]) -> list[tuple[int, str]]:
    """Lint the `credentials` of every scope: providers the gateway can send a key to. (Key files are read at load,
    not here: `policy lint` may run where the secrets are not mounted.)"""
    problems: list[tuple[int, str]] = []
    for where, at in scopes:
        node: Any = raw
        for key in at:
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        for provider in node.get("credentials", {}) if isinstance(node, Mapping) else {}:
            if provider == "bedrock":
                problems.append((line([*at, "credentials", provider]),
                                 f"{where}.credentials.bedrock: Bedrock requests are signed by the gateway with its "
                                 "AWS credentials (SigV4); there is no key to inject"))
            elif provider not in KEY_HEADERS:
                problems.append((line([*at, "credentials", provider]),
                                 f"{where}.credentials.{provider}: the gateway cannot inject a key for {provider}"))
    return problems


def read_keys(policy_path: str, files: Mapping[str, Sequence[str]]) -> dict[str, Secret]:
    """Every key file's key; ConfigError naming the policy file, the scope and the file (never its content)."""
    keys = {}
    for file, named_at in files.items():
        where = f"{policy_path}: {', '.join(named_at)}: key file {file}"
        try:
            data = Path(file).read_bytes()[: MAX_KEY_BYTES + 1]
        except OSError as e:
            raise ConfigError(f"{where}: cannot read: {e.strerror or type(e).__name__}") from None
        if len(data) > MAX_KEY_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_KEY_BYTES} bytes, not a key")
        text = data.strip()
        if not text:
            raise ConfigError(f"{where}: is empty")
        if any(b < 0x21 or b > 0x7E for b in text):  # one header value: printable ASCII, no spaces or line breaks
            raise ConfigError(f"{where}: is not one line of printable ASCII (a key file holds the key alone)")
        keys[file] = Secret(text.decode("ascii"))
    return keys
