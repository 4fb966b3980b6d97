"""llm-content-filter: serve, scan, rules lint|test, known-secrets add.

Exit codes: 0 ok / allowed; 1 denied (scan) or a pack problem (rules); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from filter.errors import ConfigError, RulePackErrors
from filter.model import Envelope
from filter.settings import Settings, load_settings

PROVIDER_PATHS = {
    "openai": "/v1/chat/completions",
    "azure": "/openai/deployments/default/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-pro:generateContent",
    "bedrock": "/model/anthropic.claude-v2/converse",
    "mistral": "/v1/chat/completions",
    "groq": "/openai/v1/chat/completions",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llm-content-filter", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gRPC ext_authz + rate limit server")
    s.add_argument("--config", help="config YAML (default: shipped packs, trusted identity headers)")
    s.add_argument("--listen", help="HOST:PORT of the first worker (default 127.0.0.1:9001)")
    s.add_argument("--workers", type=int, help="worker processes, each on its own port: PORT, PORT+1, …")
    s.add_argument("--metrics-port", type=int, help="Prometheus /metrics port of the first worker (0: off)")

    sc = sub.add_parser("scan", help="scan a request body or plain text and print the decision as JSON")
    sc.add_argument("file", help="file to scan, or - for stdin")
    sc.add_argument("--config")
    sc.add_argument("--packs", nargs="+", help="rule pack files or directories (default: from config)")
    sc.add_argument("--provider", choices=sorted(PROVIDER_PATHS), help="request format of the body")
    sc.add_argument("--path", help="request path (chooses the decoder; default from --provider)")
    sc.add_argument("--content-encoding", default="", help="e.g. gzip, deflate, br, zstd")

    r = sub.add_parser("rules", help="check rule packs")
    rsub = r.add_subparsers(dest="rules_command", required=True)
    for name, text in (("lint", "schema, Hyperscan compile and examples; errors as file:line: rule-id: message"),
                       ("test", "run every rule's match / no_match examples and report")):
        c = rsub.add_parser(name, help=text)
        c.add_argument("paths", nargs="+", help="pack files or directories")
    imp = rsub.add_parser("import", help="convert another scanner's rules into a pack (report on stderr)")
    imp.add_argument("format", choices=["gitleaks"], help="source format")
    imp.add_argument("file", help="gitleaks config (TOML)")
    imp.add_argument("-o", "--output", help="write the pack here (default: stdout)")
    imp.add_argument("--pack-name", help="pack name (default: from the file name)")
    imp.add_argument("--id-prefix", default="", help="prepended to every rule id, e.g. gitleaks-")

    k = sub.add_parser("known-secrets", help="known-secret fingerprints")
    ksub = k.add_subparsers(dest="known_command", required=True)
    add = ksub.add_parser("add", help="read secrets from stdin, one per line; print their fingerprints")
    add.add_argument("--config")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "scan":
            return _scan(args)
        if args.command == "rules" and args.rules_command == "import":
            from filter.rules.importers import run_import

            return run_import(args.format, args.file, args.output, args.pack_name, args.id_prefix)
        if args.command == "rules":
            return _rules(args.rules_command, args.paths)
        return _known_add(args)
    except RulePackErrors as e:
        print(e, file=sys.stderr)
        return 1 if args.command == "rules" else 2
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    changes: dict[str, object] = {}
    if getattr(args, "listen", None):
        changes["listen"] = args.listen
    if getattr(args, "workers", None):
        changes["workers"] = args.workers
    if getattr(args, "metrics_port", None) is not None:
        changes["metrics_port"] = args.metrics_port
    if getattr(args, "packs", None):
        changes["packs"] = tuple(args.packs)
    return replace(settings, **changes)  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    from filter.server.app import serve

    return serve(args.config, _settings(args))


def _scan(args: argparse.Namespace) -> int:
    from filter.pipeline import evaluate
    from filter.runtime import Runtime
    from filter.tokens import TokenCounter, load_encoding

    settings = _settings(args)
    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    path = args.path or PROVIDER_PATHS.get(args.provider or "", "/")
    headers = {"content-type": "application/json"}
    if args.provider:
        headers["x-llm-provider"] = args.provider
    if args.content_encoding:
        headers["content-encoding"] = args.content_encoding
    runtime = Runtime(args.config, settings)
    counter = TokenCounter(load_encoding(settings.token_encoding_file))
    decision = evaluate(Envelope("POST", path, headers, body), runtime.current, counter).decision
    print(json.dumps({
        "decision": decision.verdict.value,
        "status": decision.http_status,
        "reason": decision.reason,
        "message": decision.message,
        "provider": decision.provider,
        "prompt_tokens": decision.prompt_tokens,
        "findings": [f.to_dict() for f in decision.findings],
    }, indent=2))
    return 0 if decision.allowed else 1


def _rules(command: str, paths: Sequence[str]) -> int:
    from filter.rules import Fingerprinter, load_ruleset

    ruleset = load_ruleset(paths, Fingerprinter(b"rules-check"))
    examples = sum(len(r.examples.match) + len(r.examples.no_match) for r in ruleset.rules)
    if command == "test":
        for rule in ruleset.rules:
            print(f"ok {rule.id} ({len(rule.examples.match)} match, {len(rule.examples.no_match)} no_match)")
    print(f"{len(ruleset.packs)} packs, {len(ruleset.rules)} rules, {examples} examples: all hold")
    return 0


def _known_add(args: argparse.Namespace) -> int:
    from filter.rules import Fingerprinter
    from filter.runtime import fingerprint_key

    fingerprint = Fingerprinter(fingerprint_key(load_settings(args.config), required=True))
    for line in sys.stdin.read().splitlines():
        if line.strip():
            print(fingerprint(line.strip().encode()))
    return 0
