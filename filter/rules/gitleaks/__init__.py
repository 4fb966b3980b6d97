"""Import another scanner's rules as one of our packs: `llm-content-filter rules import gitleaks FILE.toml`.

gitleaks (v8 schema) -> pack, so a team keeps the rules it already has:

- each `[[rules]]` entry with a `regex` becomes a `secret` rule: `id` made kebab-case, `description`,
  `keywords` (lower-cased), `entropy` -> `validators: [{entropy: N}]` (plus `has_digit` for `generic*` ids,
  as gitleaks requires a digit in those secrets), the secret group (`secretGroup`, else group 1 when the
  regex has groups, else the whole match) rewritten as `(?P<secret>...)`, the other groups non-capturing;
- allowlists (rule-level `[[rules.allowlists]]` / `[rules.allowlist]`, and the global `[allowlist]` /
  `[[allowlists]]` with optional `targetRules`): `regexes` aimed at the secret and `stopwords` (as
  case-insensitive substring patterns) become `allow: [{pattern: ...}]`; an AND of both becomes one pattern
  with two lookaheads (allow patterns run only in `regex`, never in Hyperscan). Whatever cannot be expressed
  on the secret (`regexTarget` match / line, `paths`, `commits`, AND with those) is reported as
  "dropped: reason" on the rule, never silently lost;
- Go RE2 syntax is adapted so that Hyperscan (block mode, HS_FLAG_MULTILINE) and `regex` (MULTILINE,
  REVERSE) both accept the pattern with Go's meaning (research/rule-engines.md 7.2):
  mid-pattern `(?i)` -> `(?i:...)` up to the end of its group (and around the later alternatives of that
  group, where Go also applies it); lazy quantifiers `*? +? ?? {n,m}?` -> greedy (a no-op for Hyperscan,
  which reports every end offset; the confirm step is anchored at that end); `(?U)` removed for the same
  reason; POSIX classes `[[:alnum:]]` -> explicit ranges; `\\Q...\\E` -> escaped literal; `\\x{HH}` -> `\\xHH`;
  `\\v` -> `\\x0b` (Hyperscan reads `\\v` as a class); a `{` that is not a Go repetition -> `\\{` (Python reads
  `{,n}` as a repetition, Go as text). `\\z` is kept: both engines read it as Go does. A construct the adapter
  cannot parse leaves the pattern unchanged, and the rule is kept only if both engines still compile it;
  what Hyperscan refuses (lookaround, back-references, "Pattern is too large", ...) is reported as skipped
  with Hyperscan's message. Note: `^` and `$` match at every line here (the engine is MULTILINE); in
  gitleaks they match at the start / end of the scanned file.
- examples (required by our packs, absent from gitleaks configs) are generated from the adapted pattern
  (a walk of its `re` parse tree with a seeded RNG: the secret part drawn to be high-entropy, the first
  keyword included when an alternative allows it) and verified with the engine itself; `no_match` is the
  example with its secret replaced by a placeholder run, or the keyword alone. A rule without a verified
  pair is skipped with the reason.
- path-only rules (files by name), composite rules (`required`) and `skipReport` rules are skipped: a
  request has no file paths, and composite rules need a second pass we do not have. `[extend]` is reported
  as not supported (only the rules in the given file are imported).

The whole pack is written only after it loads (`parse_pack`, then `build_ruleset`: schema, Hyperscan compile
of the whole set, every example). Exit codes: 0 at least one rule converted and the pack loads; 1 nothing
converted or the pack does not load; 2 unreadable file, invalid TOML, or bad arguments.

Modules: `re2` (Go RE2 -> Hyperscan / regex), `examples` (example generator), `convert` (gitleaks config ->
rules), `output` (the pack's YAML); this module ties them together for the CLI.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from filter.errors import ConfigImportError, RulePackError, RulePackErrors
from filter.rules import Fingerprinter, build_ruleset, parse_pack
from filter.rules.gitleaks.convert import FORMATS, Converted, Importer, Report, kebab
from filter.rules.gitleaks.output import pack_yaml
from filter.rules.gitleaks.re2 import BRACE, HEX, LAZY, QUOTED, UNGREEDY, VTAB, Adapted, adapt_pattern
from filter.rules.pack import ID as KEBAB
from filter.rules.pack import hyperscan_error
from filter.rules.pack import pattern_error as regex_error

__all__ = [
    "BRACE", "FORMATS", "HEX", "LAZY", "QUOTED", "UNGREEDY", "VTAB", "Adapted", "ConfigImportError", "Converted",
    "Report", "adapt_pattern", "hyperscan_error", "import_gitleaks", "regex_error", "run_import",
]  # fmt: skip


def import_gitleaks(file: str | Path, pack_name: str | None = None, id_prefix: str = "") -> tuple[str | None, Report]:
    """Convert a gitleaks TOML config. Returns (pack YAML or None when nothing loads, report).
    Raises ConfigImportError for an unreadable file or invalid TOML."""
    path = Path(file)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigImportError(f"{file}: cannot read: {e.strerror or e}") from None
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigImportError(f"{file}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        if message.endswith("(at end of document)"):
            lines = raw.decode("utf-8").count("\n") + 1
            message = message[: -len(")")] + f", line {lines})"
        raise ConfigImportError(f"{file}: invalid TOML: {message}") from None
    stem = kebab(path.stem)
    name = pack_name or (stem if "gitleaks" in stem else f"gitleaks-{stem}" if stem else "gitleaks")
    if not KEBAB.match(name):
        raise ConfigImportError(f"pack name {name!r} must be kebab-case (a-z, 0-9, -)")
    if id_prefix and not KEBAB.match(id_prefix.rstrip("-")):
        raise ConfigImportError(f"id prefix {id_prefix!r} must be kebab-case (a-z, 0-9, -)")
    importer = Importer(str(file), name, id_prefix)
    importer.run(config)
    report = importer.report
    while report.converted:
        text = pack_yaml(report, name, path.name)
        try:
            ruleset, errors = build_ruleset([parse_pack(text, f"{name}.yaml")], Fingerprinter(b"rules-import"))
        except RulePackErrors as e:
            ruleset, errors = None, e.errors
        if ruleset is not None and not errors:
            return text, report
        if not _drop_failing(report, errors):
            report.notes.append(f"the pack does not load: {RulePackErrors(errors)}")
            return None, report
    return None, report


def _drop_failing(report: Report, errors: list[RulePackError]) -> bool:
    """Skip the rules the whole-pack load names; False when an error names no converted rule."""
    failing = {e.rule_id: e.message for e in errors}
    kept = [c for c in report.converted if c.id not in failing]
    if len(kept) == len(report.converted):
        return False
    for c in report.converted:
        if c.id in failing:
            report.skipped.append((c.source_id, f"does not load in the whole pack: {failing[c.id]}"))
    report.converted = kept
    return True


def run_import(fmt: str, file: str, output: str | None = None, pack_name: str | None = None,
               id_prefix: str = "", stdout: Any = None, stderr: Any = None) -> int:
    """The CLI: pack YAML to stdout or `output`, report to stderr. Exit 0 / 1 / 2 (module docstring)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if fmt not in FORMATS:
        print(f"error: unknown format {fmt!r} (known: {', '.join(FORMATS)})", file=err)
        return 2
    try:
        text, report = import_gitleaks(file, pack_name, id_prefix)
    except ConfigImportError as e:
        print(f"error: {e}", file=err)
        return 2
    print(report.render(), file=err)
    if text is None:
        print("error: no rule converted; nothing written", file=err)
        return 1
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            print(f"error: cannot write {output}: {e.strerror or e}", file=err)
            return 2
        print(f"wrote {output}: {len(report.converted)} rules; the pack loads with load_ruleset", file=err)
    else:
        out.write(text)
    return 0
