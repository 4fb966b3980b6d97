"""llm-content-filter: serve, scan, rules lint|test|import, policy lint, known-secrets add.

Exit codes (README, "Commands"): 0 ok / allowed; 1 the answer is no (scan: not allowed; rules: pack problems;
import: nothing converted); 2 usage or configuration error (bad flag, unreadable or invalid config, file,
pack or key); 3 cannot run (a port is busy, or an unexpected error: `--debug` shows its traceback).
Every error is one line on stderr naming the file, flag or port at fault.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from filter.errors import ConfigError, RulePackErrors
from filter.model import Envelope
from filter.settings import Settings, load_settings

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3

PROVIDER_PATHS = {
    "openai": "/v1/chat/completions",
    "azure": "/openai/deployments/default/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-pro:generateContent",
    "bedrock": "/model/anthropic.claude-v2/converse",
    "mistral": "/v1/chat/completions",
    "groq": "/openai/v1/chat/completions",
}


class CannotRun(Exception):
    """The command is right but cannot run here and now (a port is taken): exit 3."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `llm-content-filter scan: error: ... (see --help)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _RetiredPacks(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        parser.error("--packs was replaced by --pack FILE (repeatable; adds to the configured packs) "
                     "and --only-packs (use only the --pack files)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llm-content-filter", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="debug logging; tracebacks for unexpected errors")
    # --debug is also accepted after the command; SUPPRESS keeps a subcommand from resetting the global flag.
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", parents=[debug], help="run the gRPC ext_authz + rate limit server")
    s.add_argument("--config", help="config YAML (default: shipped packs, trusted identity headers)")
    s.add_argument("--listen", help="HOST:PORT of the first worker (default 127.0.0.1:9001)")
    s.add_argument("--workers", type=int, help="worker processes, each on its own port: PORT, PORT+1, …")
    s.add_argument("--metrics-port", type=int, help="Prometheus /metrics port of the first worker (0: off)")

    sc = sub.add_parser("scan", parents=[debug], help="scan a request body or plain text and print the decision as JSON")
    sc.add_argument("file", help="file to scan, or - for stdin")
    sc.add_argument("--config")
    sc.add_argument("--pack", action="append", default=[], metavar="FILE",
                    help="an extra rule pack file or directory, loaded beside the configured packs (repeatable)")
    sc.add_argument("--only-packs", action="store_true",
                    help="use only the --pack files, not the configured (or shipped) packs")
    sc.add_argument("--packs", nargs=0, action=_RetiredPacks, help=argparse.SUPPRESS)
    sc.add_argument("--provider", choices=sorted(PROVIDER_PATHS),
                    help="request format of the body (default: inferred from the body's shape)")
    sc.add_argument("--path", help="request path, as the gateway's provider would see it (chooses the decoder)")
    sc.add_argument("--content-encoding", default="", help="e.g. gzip, deflate, br, zstd")

    r = sub.add_parser("rules", help="check rule packs")
    rsub = r.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    for name, text in (("lint", "schema, Hyperscan compile and examples; errors as file:line: rule-id: message"),
                       ("test", "run every rule's match / no_match examples and report")):
        c = rsub.add_parser(name, parents=[debug], help=text)
        c.add_argument("paths", nargs="+", help="pack files or directories")
    imp = rsub.add_parser("import", parents=[debug], help="convert another scanner's rules into a pack (report on stderr)")
    imp.add_argument("format", choices=["gitleaks"], help="source format")
    imp.add_argument("file", help="gitleaks config (TOML)")
    imp.add_argument("-o", "--output", help="write the pack here (default: stdout)")
    imp.add_argument("--pack-name", help="pack name (default: from the file name)")
    imp.add_argument("--id-prefix", default="", help="prepended to every rule id, e.g. gitleaks-")

    pol = sub.add_parser("policy", help="check the policy file (scopes, allowed models, token budgets)")
    psub = pol.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    plint = psub.add_parser("lint", parents=[debug], help="schema and values; errors as file:line: message")
    plint.add_argument("file", help="policy file (YAML)")
    plint.add_argument("--config", help="also check the file against this config's packs (rule ids) and store "
                                        "(time zone), as the server does")

    k = sub.add_parser("known-secrets", help="known-secret fingerprints")
    ksub = k.add_subparsers(dest="known_command", required=True, parser_class=_Parser)
    add = ksub.add_parser("add", parents=[debug], help="read secrets from stdin, one per line; print their fingerprints")
    add.add_argument("--config")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return _run(args)
    except RulePackErrors as e:
        print(e, file=sys.stderr)
        return EXIT_NO if args.command == "rules" else EXIT_USAGE
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except CannotRun as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user; the traceback only when asked for
        if args.debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_CANNOT_RUN


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "scan":
        return _scan(args)
    if args.command == "rules" and args.rules_command == "import":
        from filter.rules.gitleaks import run_import

        return run_import(args.format, args.file, args.output, args.pack_name, args.id_prefix)
    if args.command == "rules":
        return _rules(args.rules_command, args.paths)
    if args.command == "policy":
        return _policy_lint(args.file, args.config)
    return _known_add(args)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    changes: dict[str, Any] = {}
    if getattr(args, "listen", None):
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"--listen must be HOST:PORT, not {args.listen!r}")
        changes["listen"] = args.listen
    if getattr(args, "workers", None) is not None:
        if args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {args.workers}")
        changes["workers"] = args.workers
    if getattr(args, "metrics_port", None) is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port must be 0..65535, not {args.metrics_port}")
        changes["metrics_port"] = args.metrics_port
    extra = tuple(getattr(args, "pack", None) or ())
    if getattr(args, "only_packs", False):
        if not extra:
            raise ConfigError("--only-packs needs at least one --pack FILE")
        changes["packs"] = extra
    elif extra:
        changes["packs"] = settings.packs + extra
    return replace(settings, **changes)


def _check_port(address: str, what: str) -> None:
    """Refuse early, in one line, when another process holds the port (gRPC itself would log a C++ error)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not host:
        raise ConfigError(f"{what} must be HOST:PORT, not {address!r}")
    if int(port) == 0:
        return
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise CannotRun(f"cannot listen on {address} ({what}): the port is in use by another process") from None
            raise CannotRun(f"cannot listen on {address} ({what}): {e.strerror or e}") from None


def _token_encoding(settings: Settings) -> Any:
    """The token encoding, or a config error naming `token_encoding_file` (tiktoken raises plain ValueErrors)."""
    from filter.tokens import load_encoding

    try:
        return load_encoding(settings.token_encoding_file)
    except (OSError, ValueError) as e:
        raise ConfigError(f"token_encoding_file {settings.token_encoding_file}: cannot load: {e}") from None


def _serve(args: argparse.Namespace) -> int:
    from filter.server.app import serve, worker_addresses

    settings = _settings(args)
    if settings.token_encoding_file:
        _token_encoding(settings)  # each worker loads it again; fail here with one line instead
    host = settings.listen.rpartition(":")[0]
    for i, address in enumerate(worker_addresses(settings.listen, settings.workers)):
        _check_port(address, "--listen" if i == 0 else f"--listen of worker {i + 1}")
        if settings.metrics_port:
            _check_port(f"{host}:{settings.metrics_port + i}", "--metrics-port" if i == 0 else f"metrics of worker {i + 1}")
    if settings.rewriter_listen:  # worker i rewrites on PORT + i
        for i, address in enumerate(worker_addresses(settings.rewriter_listen, settings.workers)):
            _check_port(address, "rewriter_listen" if i == 0 else f"rewriter_listen of worker {i + 1}")
    try:
        return serve(args.config, settings)
    except OSError as e:  # lost a race for a port after the check, or the metrics port
        raise CannotRun(str(e.strerror or e)) from None


def _read_body(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"cannot read {name}: it is a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read {name}: {e.strerror or e}") from None


def infer_provider(body: bytes) -> str | None:
    """The API a JSON body is shaped for, when no --provider or --path says: `contents` -> Gemini; Bedrock
    Converse's `inferenceConfig` / `toolConfig`; `messages` with Anthropic's top-level `system`, `stop_sequences`
    or `anthropic_version` -> Anthropic; other `messages`, `input` or `prompt` -> OpenAI. None: scanned raw."""
    stripped = body.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if "contents" in doc:
        return "gemini"
    if {"inferenceConfig", "toolConfig", "additionalModelRequestFields"} & doc.keys():
        return "bedrock"
    if "messages" in doc and {"system", "stop_sequences", "anthropic_version", "top_k"} & doc.keys():
        return "anthropic"
    if {"messages", "input", "prompt"} & doc.keys():
        return "openai"
    return None


def _scan(args: argparse.Namespace) -> int:
    from filter.pipeline import evaluate
    from filter.runtime import Runtime
    from filter.tokens import TokenCounter

    settings = _settings(args)
    body = _read_body(args.file)
    provider = args.provider
    if provider is None and not args.path and not args.content_encoding:
        provider = infer_provider(body)
    path = args.path or PROVIDER_PATHS.get(provider or "", "/")
    headers = {"content-type": "application/json"}
    if provider:
        headers["x-llm-provider"] = provider
    if args.content_encoding:
        headers["content-encoding"] = args.content_encoding
    # One-shot: a random key only makes fingerprints differ between runs, which is no reason to warn.
    runtime = Runtime(args.config, settings, warn_random_key=False)
    counter = TokenCounter(_token_encoding(settings))
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
    return EXIT_OK if decision.allowed else EXIT_NO


def _rules(command: str, paths: Sequence[str]) -> int:
    from filter.rules import Fingerprinter, load_ruleset

    ruleset = load_ruleset(paths, Fingerprinter(b"rules-check"))
    examples = sum(len(r.examples.match) + len(r.examples.no_match) for r in ruleset.rules)
    if command == "test":
        for rule in ruleset.rules:
            print(f"ok {rule.id} ({len(rule.examples.match)} match, {len(rule.examples.no_match)} no_match)")
    print(f"{len(ruleset.packs)} packs, {len(ruleset.rules)} rules, {examples} examples: all hold")
    return EXIT_OK


def _policy_lint(path: str, config: str | None) -> int:
    """Every problem as `file:line: message` on stdout; 0 clean, 1 problems, 2 unreadable (ConfigError)."""
    from filter.rules import Fingerprinter, load_ruleset
    from filter.scopes import check_against, check_text, read_text

    policy, problems = check_text(read_text(path), path)
    if policy is not None and config is not None:
        settings = load_settings(config)
        rule_ids = {r.id for r in load_ruleset(settings.packs, Fingerprinter(b"policy-lint")).rules}
        problems = check_against(policy, rule_ids, settings.store.timezone if settings.store else None)
        policy = None if problems else policy
    for problem in problems:
        print(problem)
    if policy is None:
        return EXIT_NO
    scopes = sum(len(entries) for entries in policy.scopes.values())
    print(f"{path}: ok ({scopes} scopes besides the default)")
    return EXIT_OK


def _known_add(args: argparse.Namespace) -> int:
    from filter.rules import Fingerprinter
    from filter.runtime import fingerprint_key

    fingerprint = Fingerprinter(fingerprint_key(load_settings(args.config), required=True))
    for line in sys.stdin.read().splitlines():
        if line.strip():
            print(fingerprint(line.strip().encode()))
    return EXIT_OK
