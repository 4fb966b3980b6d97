#!/usr/bin/env python3
"""Render a variant of envoy/envoy.yaml, the gateway's single source of truth.

Every change is a rewrite of the production config, so the routes, the path allowlist and the
filter chain are the same in production, in `make run` and in the end-to-end tests.

    # local stack / tests: every provider cluster -> one plain-HTTP fake provider
    python envoy/render.py --upstream http://127.0.0.1:8080 -o var/envoy-local.yaml

    # tests: own ports, two filter processes (and their usage observers), short authz timeout, JWT identity
    python envoy/render.py --upstream http://127.0.0.1:8080 \\
        --filter 127.0.0.1:9001,127.0.0.1:9002 --usage 127.0.0.1:9101,127.0.0.1:9102 \\
        --rewriter 127.0.0.1:9201,127.0.0.1:9202 --authz-timeout 0.5s \\
        --listen-port 18000 --admin-port 18001 --jwt-jwks tests/e2e/jwks.json -o out.yaml

    # benchmark floor: Envoy alone, no ext_authz, no rate limit, no usage observer (no call to the filter at all)
    python envoy/render.py --upstream http://127.0.0.1:8080 --no-ext-authz --no-ratelimit -o floor.yaml

    # production with JWT identity, a real Azure resource, Bedrock and SageMaker in eu-west-1, Vertex AI in
    # europe-west4 (TLS kept)
    python envoy/render.py --jwt-jwks /etc/envoy/jwks.json --jwt-issuer https://idp.example.com \\
        --jwt-audience llm-gateway --provider-host azure=myco.openai.azure.com \\
        --aws-region eu-west-1 --vertex-region europe-west4 -o envoy-jwt.yaml

    # a smaller pod: bound Envoy's heap to 384 MiB (give the container 384 + 768 MiB)
    python envoy/render.py --max-heap 384Mi -o envoy-small.yaml

Options that are not given leave the production value in place. Uses only PyYAML.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_CONFIG = Path(__file__).with_name("envoy.yaml")

META_NS = "llm_gateway"  # route / cluster metadata namespace of this project
FILTER_CLUSTER = "content_filter"
USAGE_CLUSTER = "usage_observer"
REWRITER_CLUSTER = "rewriter"
HCM = "envoy.filters.network.http_connection_manager"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
EXT_PROC = "envoy.filters.http.ext_proc"
AWS_SIGNING = "envoy.filters.http.aws_request_signing"
FIXED_HEAP = "envoy.resource_monitors.fixed_heap"
RATELIMIT = "envoy.filters.http.ratelimit"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
EARLY_HEADER_MUTATION = "envoy.http.early_header_mutation.header_mutation"
UPSTREAM_CLUSTER_HEADER = "x-llm-upstream-cluster"  # the in-region cluster the filter names (data residency)
REWRITER = "llm_rewriter"  # the redaction rewriter (ext_proc behind a header matcher), served by the filter
REWRITER_MARK = "x-llm-filter-rewriter"  # ext_authz's gRPC metadata: "this gateway rewrites"

# JWT contract (see envoy/README.md): verified payload lands in
# metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]["jwt_payload"], and these
# claims are copied to these request headers (client-sent copies are removed first).
JWT_PROVIDER = "llm_gateway"
JWT_PAYLOAD_KEY = "jwt_payload"
JWT_DEFAULT_ISSUER = "llm-gateway-test"
JWT_DEFAULT_HEADER = "x-llm-gateway-token"
CLAIM_HEADERS = {
    "workspace": "x-workspace-id",
    "team": "x-team-id",
    "project": "x-project-id",
    "agent": "x-agent-id",
}

# Rate-limit descriptor key -> JWT claim (with --jwt-jwks).
DESCRIPTOR_CLAIMS = {"workspace_id": "workspace", "team_id": "team"}

_DURATION = re.compile(r"^\d+(\.\d+)?s$")
_SIZE = re.compile(r"^(\d+)(Mi|Gi)?$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_GCP_REGION = re.compile(r"^([a-z]+-[a-z]+\d+|global)$")


class RenderError(ValueError):
    """A bad option or a config that does not have the expected shape."""


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    # YAML anchors load as shared objects; unshare them so a rewrite touches one place only.
    return yaml.safe_load(yaml.dump(cfg, Dumper=_NoAliasDumper))


def dump(cfg: dict[str, Any]) -> str:
    return yaml.dump(cfg, Dumper=_NoAliasDumper, sort_keys=False, width=120, allow_unicode=True)


# --- parsing helpers -------------------------------------------------------------------------


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RenderError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_upstream(text: str) -> tuple[str | None, str, int]:
    """`http://h:p` (all providers) or `provider=http://h:p` -> (provider|None, host, port)."""
    provider = None
    if "=" in text:
        provider, _, text = text.partition("=")
    url = urlsplit(text)
    if url.scheme != "http" or not url.hostname or not url.port:
        raise RenderError(f"--upstream must be http://HOST:PORT (plain HTTP, for local fakes), got {text!r}")
    return provider, url.hostname, url.port


def parse_duration(text: str) -> str:
    if not _DURATION.match(text):
        raise RenderError(f"expected a duration like 2s or 0.5s, got {text!r}")
    return text


def parse_size(text: str) -> int:
    """`805306368`, `768Mi` or `1Gi` -> bytes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise RenderError(f"expected a size like 768Mi, 1Gi or a byte count, got {text!r}")
    return int(m.group(1)) * {None: 1, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- navigation ------------------------------------------------------------------------------


def hcm(cfg: dict[str, Any]) -> dict[str, Any]:
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for flt in chain["filters"]:
                if flt["name"] == HCM:
                    return flt["typed_config"]
    raise RenderError("no http_connection_manager in the config")


def http_filter(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    for flt in hcm(cfg)["http_filters"]:
        if flt["name"] == name:
            return flt["typed_config"]
    raise RenderError(f"no http filter {name}")


def clusters(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return cfg["static_resources"]["clusters"]


def cluster(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    for c in clusters(cfg):
        if c["name"] == name:
            return c
    raise RenderError(f"no cluster {name}")


def provider_clusters(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Provider name -> cluster, found by cluster metadata llm_gateway.provider."""
    out = {}
    for c in clusters(cfg):
        provider = c.get("metadata", {}).get("filter_metadata", {}).get(META_NS, {}).get("provider")
        if provider:
            out[provider] = c
    return out


def regional_clusters(cfg: dict[str, Any], provider: str | None = None) -> dict[str, dict[str, Any]]:
    """Cluster name -> regional upstream cluster (metadata llm_gateway.upstream_of: its provider), of one provider
    or of all. Data residency: the filter names one of them per request (docs/residency.md)."""
    out = {}
    for c in clusters(cfg):
        of = c.get("metadata", {}).get("filter_metadata", {}).get(META_NS, {}).get("upstream_of")
        if of and (provider is None or of == provider):
            out[c["name"]] = c
    return out


def _endpoint(c: dict[str, Any]) -> dict[str, Any]:
    eps = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
    if len(eps) != 1:
        raise RenderError(f"cluster {c['name']}: expected one endpoint")
    return eps[0]["endpoint"]


# --- rewrites --------------------------------------------------------------------------------


def set_provider_host(c: dict[str, Any], host: str) -> None:
    """Point a TLS provider cluster at another host: address, Host header, SNI, SAN check."""
    ep = _endpoint(c)
    ep["hostname"] = host
    ep["address"]["socket_address"]["address"] = host
    options = c.get("typed_extension_protocol_options", {}).get(HTTP_OPTIONS, {})
    for flt in options.get("http_filters", []):
        if flt["name"] == AWS_SIGNING:  # the signature covers Host: the name AWS will see
            flt["typed_config"]["host_rewrite"] = host
    tls = c.get("transport_socket", {}).get("typed_config")
    if tls is not None:
        tls["sni"] = host
        for san in tls["common_tls_context"]["validation_context"].get("match_typed_subject_alt_names", []):
            san["matcher"] = {"exact": host}


def set_plain_upstream(c: dict[str, Any], host: str, port: int) -> None:
    """Send a provider cluster to a plain-HTTP/1.1 address (a local fake). The endpoint keeps
    its provider hostname, so auto_host_rewrite still sends e.g. `Host: api.anthropic.com`."""
    ep = _endpoint(c)
    ep["address"] = {"socket_address": {"address": host, "port_value": port}}
    c.pop("transport_socket", None)
    old = c.get("typed_extension_protocol_options", {}).get(HTTP_OPTIONS, {})
    if _is_ip(host):
        c["type"] = "STATIC"
        c.pop("dns_lookup_family", None)
    else:
        c["type"] = "STRICT_DNS"
    options: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"idle_timeout": "60s"},
        "explicit_http_config": {"http_protocol_options": {}},
    }
    if "http_filters" in old:  # upstream filters (Bedrock request signing) stay
        options["http_filters"] = old["http_filters"]
    c["typed_extension_protocol_options"] = {HTTP_OPTIONS: options}


def upstream_filter(c: dict[str, Any], name: str) -> dict[str, Any]:
    options = c.get("typed_extension_protocol_options", {}).get(HTTP_OPTIONS, {})
    for flt in options.get("http_filters", []):
        if flt["name"] == name:
            return flt["typed_config"]
    raise RenderError(f"cluster {c['name']}: no upstream filter {name}")


def _set_signed_region(cfg: dict[str, Any], provider: str, host: str, region: str) -> None:
    """An AWS-signed provider cluster in another region: its host (address, Host, SNI, SAN) and SigV4 region."""
    cluster = provider_clusters(cfg)[provider]
    set_provider_host(cluster, host)
    upstream_filter(cluster, AWS_SIGNING)["region"] = region


def set_aws_region(cfg: dict[str, Any], region: str) -> None:
    """Bedrock in another region: its host (address, Host, SNI, SAN) and the SigV4 signing region."""
    if not _AWS_REGION.match(region):
        raise RenderError(f"--aws-region wants a region like eu-west-1, got {region!r}")
    _set_signed_region(cfg, "bedrock", f"bedrock-runtime.{region}.amazonaws.com", region)


def set_sagemaker_region(cfg: dict[str, Any], region: str) -> None:
    """SageMaker runtime in another region: its host (address, Host, SNI, SAN) and the SigV4 signing region."""
    if not _AWS_REGION.match(region):
        raise RenderError(f"--sagemaker-region wants a region like eu-west-1, got {region!r}")
    _set_signed_region(cfg, "sagemaker", f"runtime.sagemaker.{region}.amazonaws.com", region)


def set_vertex_region(cfg: dict[str, Any], region: str) -> None:
    """Vertex AI in another region (`global`: the global endpoint): host, Host header, SNI and SAN."""
    if not _GCP_REGION.match(region):
        raise RenderError(f"--vertex-region wants a region like europe-west4 (or global), got {region!r}")
    host = "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    set_provider_host(provider_clusters(cfg)["vertex"], host)


def aws_signed_clusters(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Provider clusters that sign their requests with the gateway's AWS credentials (Bedrock, SageMaker), and
    their regional upstreams."""
    out = []
    for c in [*provider_clusters(cfg).values(), *regional_clusters(cfg).values()]:
        options = c.get("typed_extension_protocol_options", {}).get(HTTP_OPTIONS, {})
        if any(f["name"] == AWS_SIGNING for f in options.get("http_filters", [])):
            out.append(c)
    return out


def set_aws_credentials_file(cfg: dict[str, Any], path: str, profile: str | None) -> None:
    """Sign Bedrock and SageMaker requests with the keys of a mounted AWS credentials file (and nothing else)."""
    provider: dict[str, Any] = {"credentials_data_source": {"filename": path}}
    if profile:
        provider["profile"] = profile
    for c in aws_signed_clusters(cfg):
        signer = upstream_filter(c, AWS_SIGNING)
        signer["credential_provider"] = {"custom_credential_provider_chain": True,
                                         "credentials_file_provider": copy.deepcopy(provider)}


def local_aws_credentials(bedrock: dict[str, Any]) -> None:
    """A local Bedrock upstream: credentials from the environment or ~/.aws/credentials only. The default chain
    would also ask the cloud's instance metadata address, which a laptop or test machine must not be sent to."""
    signer = upstream_filter(bedrock, AWS_SIGNING)
    signer.setdefault("credential_provider", {"custom_credential_provider_chain": True,
                                              "environment_credential_provider": {},
                                              "credentials_file_provider": {}})


# Hosts a regional upstream gets when --regional-upstream names none: providers whose regional host is a pattern.
REGIONAL_HOSTS = {"bedrock": "bedrock-runtime.{region}.amazonaws.com", "vertex": "{region}-aiplatform.googleapis.com"}
_REGION = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def regional_route(cfg: dict[str, Any], provider: str) -> dict[str, Any]:
    """The route that sends a request to the provider's cluster the filter named in x-llm-upstream-cluster (any of
    `<provider>` and `<provider>-<name>`), made from the provider's prefix route: its paths (prefix optional) and
    methods, its prefix removal, the headers it removes, its timeouts and metadata."""
    routes = hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"]
    prefixed = next((r for r in routes if r.get("name") == f"{provider}-prefix"), None)
    if prefixed is None:
        raise RenderError(f"no route {provider}-prefix to make the regional route of {provider} from")
    action = {k: v for k, v in prefixed["route"].items() if k != "cluster"}
    # The same allowlist as the provider's own routes, with or without its gateway prefix.
    lead, match = f"^/{provider}", prefixed["match"]
    if "safe_regex" in match and match["safe_regex"]["regex"].startswith(lead):
        path = f"^(/{provider})?" + match["safe_regex"]["regex"][len(lead):]
    elif "path" in match and match["path"].startswith(f"/{provider}/"):
        path = f"^(/{provider})?" + re.escape(match["path"][len(provider) + 1:]) + "$"
    else:
        raise RenderError(f"route {provider}-prefix: expected a path under /{provider}/")
    route: dict[str, Any] = {
        "name": f"{provider}-regional",
        "match": {"safe_regex": {"regex": path}, "headers": [
            {"name": UPSTREAM_CLUSTER_HEADER,
             "string_match": {"safe_regex": {"regex": f"^{re.escape(provider)}(-[a-z0-9-]+)?$"}}},
            *copy.deepcopy(match.get("headers", []))]},
        "route": {"cluster_header": UPSTREAM_CLUSTER_HEADER, "cluster_not_found_response_code": "SERVICE_UNAVAILABLE",
                  **copy.deepcopy(action)},
        "metadata": {"filter_metadata": {META_NS: {"provider": provider, "provider_source": "region"}}},
    }
    if "request_headers_to_remove" in prefixed:
        route["request_headers_to_remove"] = list(prefixed["request_headers_to_remove"])
    return route


def add_regional_upstream(cfg: dict[str, Any], spec: str) -> None:
    """`PROVIDER@REGION[=HOST]`: a cluster `<provider>-<region>` copied from the provider's (TLS, protocols, Bedrock
    signing in that region) on HOST (default: the provider's regional host pattern), and the provider's regional
    route if it has none yet."""
    target, _, host = spec.partition("=")
    provider, sep, region = target.partition("@")
    base = provider_clusters(cfg).get(provider)
    if not sep or base is None or not _REGION.match(region):
        raise RenderError(f"--regional-upstream wants PROVIDER@REGION[=HOST] with one of {sorted(provider_clusters(cfg))}")
    host = host or REGIONAL_HOSTS.get(provider, "").format(region=region)
    if not host:
        raise RenderError(f"--regional-upstream {spec}: name the host of {provider} in {region} (=HOST)")
    name = f"{provider}-{region}"
    if any(c["name"] == name for c in clusters(cfg)):
        raise RenderError(f"--regional-upstream {spec}: the config already has a cluster {name}")
    c = copy.deepcopy(base)
    c["name"] = c["load_assignment"]["cluster_name"] = name
    c["metadata"] = {"filter_metadata": {META_NS: {"upstream_of": provider, "region": region}}}
    set_provider_host(c, host)
    if provider == "bedrock":
        if not _AWS_REGION.match(region):
            raise RenderError(f"--regional-upstream {spec}: Bedrock wants an AWS region like eu-west-1")
        upstream_filter(c, AWS_SIGNING)["region"] = region
    clusters(cfg).append(c)
    routes = hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"]
    if not any(r.get("name") == f"{provider}-regional" for r in routes):
        first = next(i for i, r in enumerate(routes) if "route" in r)  # before every forwarding route
        routes.insert(first, regional_route(cfg, provider))


def set_max_heap(cfg: dict[str, Any], size: int) -> None:
    """The heap bound the overload manager acts on (shed load at 90 %, reset big streams from 80 %)."""
    if size < 32 << 20:
        raise RenderError("--max-heap below 32Mi leaves no room for Envoy itself")
    for monitor in cfg.get("overload_manager", {}).get("resource_monitors", []):
        if monitor["name"] == FIXED_HEAP:
            monitor["typed_config"]["max_heap_size_bytes"] = size
            return
    raise RenderError("no fixed_heap resource monitor in the config")


def set_filter_endpoints(cfg: dict[str, Any], endpoints: list[tuple[str, int]], name: str = FILTER_CLUSTER) -> None:
    c = cluster(cfg, name)
    if any(not _is_ip(h) for h, _ in endpoints):
        c["type"] = "STRICT_DNS"
    c["load_assignment"]["endpoints"] = [
        {
            "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}} for h, p in endpoints
            ]
        }
    ]


def set_listener(cfg: dict[str, Any], address: str | None, port: int | None) -> None:
    sock = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]
    if address is not None:
        sock["address"] = address
    if port is not None:
        sock["port_value"] = port


def set_admin(cfg: dict[str, Any], address: str | None, port: int | None) -> None:
    sock = cfg["admin"]["address"]["socket_address"]
    if address is not None:
        sock["address"] = address
    if port is not None:
        sock["port_value"] = port


def set_ca_bundle(cfg: dict[str, Any], path: str) -> None:
    for c in [*provider_clusters(cfg).values(), *regional_clusters(cfg).values()]:
        tls = c.get("transport_socket", {}).get("typed_config")
        if tls is not None:
            tls["common_tls_context"]["validation_context"]["trusted_ca"] = {"filename": path}


def _early_mutations(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    for ext in hcm(cfg).get("early_header_mutation_extensions", []):
        if ext["name"] == EARLY_HEADER_MUTATION:
            return ext["typed_config"]["mutations"]
    raise RenderError("no early header mutation extension in the config")


def add_jwt(
    cfg: dict[str, Any],
    jwks_file: str,
    issuer: str = JWT_DEFAULT_ISSUER,
    audiences: list[str] | None = None,
    token_header: str = JWT_DEFAULT_HEADER,
) -> None:
    """Require a gateway JWT on every request and make its claims the identity.

    - token from `token_header` (not Authorization: that carries the provider key), removed
      before the request goes on (forward: false); missing / invalid -> 401 from Envoy;
    - verified payload -> dynamic metadata envoy.filters.http.jwt_authn / jwt_payload, which
      ext_authz already forwards (metadata_context_namespaces);
    - client-sent x-workspace-id / x-team-id / x-project-id / x-agent-id are removed early,
      then set from the claims, so the filter sees the verified identity;
    - rate-limit descriptors are read from the verified claims (jwt_payload.workspace / .team).
    """
    provider: dict[str, Any] = {
        "issuer": issuer,
        "local_jwks": {"filename": jwks_file},
        "from_headers": [{"name": token_header}],
        "forward": False,
        "require_expiration": True,
        "clock_skew_seconds": 60,
        "payload_in_metadata": JWT_PAYLOAD_KEY,
        "claim_to_headers": [{"header_name": header, "claim_name": claim} for claim, header in CLAIM_HEADERS.items()],
    }
    if audiences:
        provider["audiences"] = list(audiences)
    jwt_filter = {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {JWT_PROVIDER: provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}}],
        },
    }
    filters = hcm(cfg)["http_filters"]
    if any(f["name"] == JWT_AUTHN for f in filters):
        raise RenderError("the config already has a jwt_authn filter")
    filters.insert(0, jwt_filter)  # first: nothing runs for a request without a valid token
    # Rate-limit descriptors from the verified claims instead of the filter's metadata.
    for limit in hcm(cfg)["route_config"]["virtual_hosts"][0].get("rate_limits", []):
        for action in limit["actions"]:
            meta = action.get("metadata")
            if meta and meta["metadata_key"]["key"] == EXT_AUTHZ:
                claim = DESCRIPTOR_CLAIMS[meta["descriptor_key"]]
                meta["metadata_key"] = {"key": JWT_AUTHN, "path": [{"key": JWT_PAYLOAD_KEY}, {"key": claim}]}
    mutations = _early_mutations(cfg)
    for header in CLAIM_HEADERS.values():
        mutations.append({"remove": header})
    ext_authz = http_filter(cfg, EXT_AUTHZ)
    namespaces = ext_authz.setdefault("metadata_context_namespaces", [])
    if JWT_AUTHN not in namespaces:
        namespaces.append(JWT_AUTHN)


def drop_http_filter(cfg: dict[str, Any], name: str) -> None:
    """Remove an HTTP filter from the chain and its per-route configs (benchmark floors only)."""
    manager = hcm(cfg)
    before = len(manager["http_filters"])
    manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != name]
    if len(manager["http_filters"]) == before:
        raise RenderError(f"no http filter {name}")
    for vhost in manager["route_config"]["virtual_hosts"]:
        for holder in [vhost, *vhost.get("routes", [])]:
            per_filter = holder.get("typed_per_filter_config")
            if per_filter and name in per_filter:
                del per_filter[name]
                if not per_filter:
                    del holder["typed_per_filter_config"]


def drop_filter_cluster(cfg: dict[str, Any], name: str = FILTER_CLUSTER) -> None:
    """With neither ext_authz nor ratelimit left nothing calls the filter: no cluster, no health checks."""
    cfg["static_resources"]["clusters"] = [c for c in clusters(cfg) if c["name"] != name]


def drop_usage(cfg: dict[str, Any]) -> None:
    """No usage observer: responses are not read for token usage (budget reservations then expire, charged in
    full after the filter's reservation timeout)."""
    drop_http_filter(cfg, EXT_PROC)
    drop_filter_cluster(cfg, USAGE_CLUSTER)


def drop_rewriter(cfg: dict[str, Any]) -> None:
    """No rewriter: the filter is no longer told the gateway rewrites, so a value to redact blocks instead."""
    drop_http_filter(cfg, REWRITER)
    drop_filter_cluster(cfg, REWRITER_CLUSTER)
    try:
        service = http_filter(cfg, EXT_AUTHZ)["grpc_service"]
    except RenderError:
        return
    marks = [m for m in service.get("initial_metadata", []) if m.get("key") != REWRITER_MARK]
    if marks:
        service["initial_metadata"] = marks
    else:
        service.pop("initial_metadata", None)


def render(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    no_ext_authz = getattr(args, "no_ext_authz", False)
    no_ratelimit = getattr(args, "no_ratelimit", False)
    if no_ext_authz and (args.authz_timeout or args.jwt_jwks):
        raise RenderError("--no-ext-authz cannot be combined with --authz-timeout or --jwt-jwks")
    if no_ratelimit and args.ratelimit_timeout:
        raise RenderError("--no-ratelimit cannot be combined with --ratelimit-timeout")
    if no_ext_authz and no_ratelimit and args.filter:
        raise RenderError("--filter has no effect with --no-ext-authz --no-ratelimit (nothing calls the filter)")
    no_usage = getattr(args, "no_usage", False) or (no_ext_authz and no_ratelimit)
    usage = getattr(args, "usage", None)
    if no_usage and usage:
        raise RenderError("--usage cannot be combined with --no-usage (or --no-ext-authz --no-ratelimit)")
    rewriter = getattr(args, "rewriter", None)
    if rewriter and (no_ext_authz or getattr(args, "no_rewriter", False)):
        raise RenderError("--rewriter cannot be combined with --no-rewriter (or --no-ext-authz)")
    providers = provider_clusters(cfg)
    if not providers:
        raise RenderError("no provider clusters (cluster metadata llm_gateway.provider)")

    aws_region = getattr(args, "aws_region", None)
    if aws_region:  # before --provider-host, which may name a VPC endpoint in that region
        set_aws_region(cfg, aws_region)
    sagemaker_region = getattr(args, "sagemaker_region", None) or (aws_region if "sagemaker" in providers else None)
    if sagemaker_region:
        set_sagemaker_region(cfg, sagemaker_region)
    vertex_region = getattr(args, "vertex_region", None)
    if vertex_region:
        set_vertex_region(cfg, vertex_region)

    for spec in getattr(args, "regional_upstream", None) or []:
        add_regional_upstream(cfg, spec)
    regional = regional_clusters(cfg)

    for item in args.provider_host or []:
        name, sep, host = item.partition("=")
        if sep and name in regional and host:  # a regional upstream (data residency): that cluster only
            set_provider_host(regional[name], host)
            continue
        if not sep or name not in providers or not host:
            raise RenderError(f"--provider-host wants PROVIDER=HOST with one of {sorted(providers)} "
                              f"(or a regional cluster: {sorted(regional)})")
        set_provider_host(providers[name], host)

    if args.ca_bundle:
        set_ca_bundle(cfg, args.ca_bundle)

    for item in args.upstream or []:
        name, host, port = parse_upstream(item)
        if name is None:
            targets = list(providers.values()) + list(regional.values())  # regional upstreams too: all local
        elif name in providers:
            targets = [providers[name], *regional_clusters(cfg, name).values()]
        elif name in regional:
            targets = [regional[name]]
        else:
            raise RenderError(f"--upstream: unknown provider {name!r}; known: {sorted(providers)}, "
                              f"regional: {sorted(regional)}")
        for c in targets:
            set_plain_upstream(c, host, port)
            if c in aws_signed_clusters(cfg):
                local_aws_credentials(c)

    if args.filter:
        set_filter_endpoints(cfg, [parse_host_port(x) for x in args.filter.split(",") if x.strip()])
    if usage:
        set_filter_endpoints(cfg, [parse_host_port(x) for x in usage.split(",") if x.strip()], USAGE_CLUSTER)
    if rewriter:
        set_filter_endpoints(cfg, [parse_host_port(x) for x in rewriter.split(",") if x.strip()], REWRITER_CLUSTER)
    if args.authz_timeout:
        http_filter(cfg, EXT_AUTHZ)["grpc_service"]["timeout"] = parse_duration(args.authz_timeout)
    if args.ratelimit_timeout:
        http_filter(cfg, RATELIMIT)["timeout"] = parse_duration(args.ratelimit_timeout)

    credentials_file = getattr(args, "aws_credentials_file", None)
    if credentials_file:
        set_aws_credentials_file(cfg, credentials_file, getattr(args, "aws_profile", None))
    elif getattr(args, "aws_profile", None):
        raise RenderError("--aws-profile needs --aws-credentials-file")
    max_heap = getattr(args, "max_heap", None)
    if max_heap:
        set_max_heap(cfg, parse_size(max_heap))

    set_listener(cfg, args.listen_address, args.listen_port)
    set_admin(cfg, args.admin_address, args.admin_port)

    if args.jwt_jwks:
        jwks = args.jwt_jwks
        if not Path(jwks).is_absolute():
            jwks = str(Path(jwks).resolve())  # Envoy may run from another directory
        add_jwt(cfg, jwks, args.jwt_issuer, args.jwt_audience, args.jwt_header)

    if (no_ext_authz or getattr(args, "no_rewriter", False)) and any(
            f["name"] == REWRITER for f in hcm(cfg)["http_filters"]):
        drop_rewriter(cfg)  # without the Check nothing marks a request for it
    if no_ext_authz:
        drop_http_filter(cfg, EXT_AUTHZ)
    if no_ratelimit:
        drop_http_filter(cfg, RATELIMIT)
    if no_ext_authz and no_ratelimit:
        drop_filter_cluster(cfg)
    if no_usage:
        drop_usage(cfg)
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Render a variant of envoy/envoy.yaml (the single source of truth).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1].split("Options that", 1)[0],
    )
    p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help="input (envoy/envoy.yaml)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument(
        "--upstream",
        action="append",
        metavar="[PROVIDER=]http://HOST:PORT",
        help="send provider clusters (all, or one) to a plain-HTTP address, TLS removed; repeatable",
    )
    p.add_argument(
        "--provider-host",
        action="append",
        metavar="PROVIDER=HOST",
        help="change a provider's TLS host (address, Host, SNI, SAN), e.g. azure=myco.openai.azure.com",
    )
    p.add_argument("--ca-bundle", help="CA file for provider TLS (default /etc/ssl/certs/ca-certificates.crt)")
    p.add_argument("--filter", metavar="HOST:PORT[,HOST:PORT]", help="filter server endpoint(s)")
    p.add_argument("--usage", metavar="HOST:PORT[,HOST:PORT]",
                   help="the filter's usage observer endpoint(s): its usage_listen, one per worker (127.0.0.1:9101)")
    p.add_argument("--no-usage", action="store_true",
                   help="drop the usage observer (ext_proc): token usage is not read off responses")
    p.add_argument("--rewriter", metavar="HOST:PORT[,HOST:PORT]",
                   help="the filter's redaction rewriter endpoint(s): its rewriter_listen, one per worker "
                        "(127.0.0.1:9201)")
    p.add_argument("--no-rewriter", action="store_true",
                   help="drop the redaction rewriter: values the policy redacts are refused instead")
    p.add_argument("--authz-timeout", metavar="DURATION", help="ext_authz Check timeout (2s)")
    p.add_argument("--ratelimit-timeout", metavar="DURATION", help="rate limit call timeout (0.5s)")
    p.add_argument("--listen-address", help="listener address (0.0.0.0)")
    p.add_argument("--listen-port", type=int, help="listener port (10000)")
    p.add_argument("--admin-address", help="admin address (127.0.0.1)")
    p.add_argument("--admin-port", type=int, help="admin port (9901)")
    p.add_argument("--jwt-jwks", metavar="FILE", help="enable jwt_authn with this local JWKS file")
    p.add_argument("--jwt-issuer", default=JWT_DEFAULT_ISSUER, help="required iss (llm-gateway-test)")
    p.add_argument("--jwt-audience", action="append", help="accepted aud; repeatable (default: any)")
    p.add_argument("--jwt-header", default=JWT_DEFAULT_HEADER, help=f"header carrying the JWT ({JWT_DEFAULT_HEADER})")
    p.add_argument("--regional-upstream", action="append", metavar="PROVIDER@REGION[=HOST]",
                   help="add a regional upstream cluster <provider>-<region> (data residency; repeatable); HOST "
                        "defaults to bedrock-runtime.REGION.amazonaws.com (Bedrock, signed in REGION) or "
                        "REGION-aiplatform.googleapis.com (Vertex)")
    p.add_argument("--aws-region",
                   help="Bedrock (and SageMaker) region: host, TLS name and SigV4 signing region (us-east-1)")
    p.add_argument("--sagemaker-region",
                   help="SageMaker runtime region: host, TLS name and SigV4 signing region (--aws-region, else us-east-1)")
    p.add_argument("--vertex-region",
                   help="Vertex AI region, e.g. europe-west4, or global: host and TLS name (us-central1)")
    p.add_argument("--aws-credentials-file", metavar="FILE",
                   help="sign Bedrock requests with this AWS credentials file only (default: Envoy's AWS chain)")
    p.add_argument("--aws-profile", help="profile in --aws-credentials-file (default: default)")
    p.add_argument("--max-heap", metavar="SIZE",
                   help="heap bound of the overload manager (640Mi); give the container the bound + 768Mi")
    p.add_argument("--no-ext-authz", action="store_true",
                   help="drop the ext_authz filter: NO CONTENT FILTERING (benchmark floor only, never production)")
    p.add_argument("--no-ratelimit", action="store_true",
                   help="drop the rate limit filter (benchmarks); with --no-ext-authz also the filter cluster "
                        "and the usage observer")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = render(load(args.config), args)
    except (RenderError, KeyError, OSError, yaml.YAMLError) as exc:
        print(f"render.py: error: {exc}", file=sys.stderr)
        return 2
    cmd = " ".join(["envoy/render.py", *(argv if argv is not None else sys.argv[1:])])
    text = f"# GENERATED from {args.config.name} by: {cmd}\n# Do not edit; edit envoy/envoy.yaml.\n" + dump(out)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
