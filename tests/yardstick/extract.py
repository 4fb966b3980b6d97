"""Builds the yard-stick's data files from public scanners' test suites and open-source repositories.

Run with the source repositories checked out as bare git directories (one per repo, `<owner>+<name>/repo`
under MIRRORS, or pass `--mirrors DIR`):

    .venv/bin/python -m tests.yardstick.extract [--mirrors DIR]

Writes `tests/yardstick/cases.jsonl` (labelled credential shapes) and `tests/yardstick/negatives.jsonl` (a
manifest of secret-free files). No source string is stored: each case keeps where it came from (repository,
path, commit, line), the scanner's family, the label and the *shape* of the token (tests/yardstick/shapes.py),
from which the harness draws fresh values. Negatives are stored as (repository, commit, path, sha256); the
harness reads them from the same checkouts.

Selection rules (not hand-picked):
- trufflehog: every `want: []string{…}` of `pkg/detectors/**/*_test.go` (not integration tests) whose entries
  resolve to string literals or constants of the file; `id:secret` pairs become multi-part cases.
- gitleaks: every `tps` (positive) and `fps` (negative when it is obviously a placeholder, else left out: a near
  miss such as a wrong length is not a label we can take) of `cmd/generate/config/rules/*.go`; `secrets.NewSecret`
  generator patterns are sampled once to get a concrete string.
- detect-secrets: every `pytest.mark.parametrize` row of `tests/plugins/*_test.py` with a boolean label column,
  and the rows of tests that assert one finding per line.
A scanner positive that is obviously a placeholder (`xxxx`, `EXAMPLE`, `<your-token>`) gets label
`placeholder`: reported apart, counted neither as recall nor as a false positive.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.yardstick.shapes import PEM, common_prefix_lengths, is_placeholder, sample_regex, shape_of

HERE = Path(__file__).parent
MIRRORS = Path("/work/.mirror")
CASES = HERE / "cases.jsonl"
NEGATIVES = HERE / "negatives.jsonl"

# Secret-free repositories for the negative set: the selection rule picks files by type from each.
NEGATIVE_REPOS = ("kubernetes/examples", "docker-library/postgres", "actions/starter-workflows", "psf/requests",
                  "BurntSushi/ripgrep", "axios/axios", "docker/awesome-compose")
FILE_TYPES = (
    ("dockerfile", re.compile(r"(?:^|/)(?:Dockerfile[^/]*|[^/]*\.dockerfile)$")),
    ("compose", re.compile(r"(?:^|/)(?:docker-)?compose[^/]*\.ya?ml$")),
    ("ci", re.compile(r"(?:^|/)\.github/workflows/[^/]+\.ya?ml$|^ci/[^/]+\.ya?ml$|(?:^|/)[^/]+\.properties\.json$")),
    ("lockfile", re.compile(r"(?:^|/)(?:package-lock\.json|yarn\.lock|Cargo\.lock|go\.sum|poetry\.lock|"
                            r"requirements[^/]*\.txt)$")),
    ("k8s", re.compile(r"\.ya?ml$")),
    ("config", re.compile(r"\.(?:toml|ini|cfg|conf|env\.example|json|xml|properties)$|(?:^|/)\.env[^/]*$")),
    ("readme", re.compile(r"\.(?:md|rst|txt)$")),
    ("code", re.compile(r"\.(?:py|go|rs|js|ts|sh|java|rb|php|c|h)$|(?:^|/)Makefile$")),
)
PER_REPO_TYPE = 14  # files per (repository, type): a stable hash order picks them
MAX_FILE_BYTES = 200_000


def git_dir(mirrors: Path, repo: str) -> Path:
    return mirrors / repo.replace("/", "+") / "repo"


def git(gd: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={gd}", *args], check=True, capture_output=True, text=True,
                          errors="replace").stdout


def head(gd: Path) -> str:
    return git(gd, "rev-parse", "HEAD").strip()


# -- the token inside a test line ------------------------------------------------------------------------------

URI = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>`]+@[^\s'\"<>`]+")
CANDIDATE = re.compile(r"[A-Za-z0-9+/=_\-.~:]{8,}")
LEFT_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,40}?[=:]+(?=.{8})")


def secret_in(text: str) -> str | None:
    """The credential inside a test line (or the line when it is one token); None when there is none."""
    pem = PEM.search(text)
    if pem:
        end = text.find("-----END", pem.end())
        stop = text.find("-----", end + 8) if end != -1 else -1
        return text[pem.start(): stop + 5] if stop != -1 else None
    s = text.strip().strip("'\"`")
    if 8 <= len(s) <= 600 and not re.search(r"[\s'\"`]", s):
        if "://" not in s:
            s = LEFT_NAME.sub("", s)
        return s
    uri = URI.search(text)
    if uri:
        return uri.group(0)
    cands = [LEFT_NAME.sub("", c).strip(".:") for c in CANDIDATE.findall(text)]
    cands = [c for c in cands if len(c) >= 8 and "://" not in c]
    mixed = [c for c in cands if re.search(r"\d", c) and re.search(r"[A-Za-z]", c)]
    pick = max(mixed or cands, key=len, default=None)
    return pick


# -- Go test files --------------------------------------------------------------------------------------------

GO_STRING = r'"(?:[^"\\\n]|\\.)*"|`[^`]*`'
GO_DEF = re.compile(r"(?m)^\s*([A-Za-z_]\w*)\s*(?:string\s*)?:?=\s*((?:" + GO_STRING + r")(?:\s*\+\s*(?:"
                    + GO_STRING + r"))*)\s*$")
KEYWORDS = re.compile(r"func \(\w+ \w+\) Keywords\(\) \[\]string \{\s*return \[\]string\{([^}]*)\}")


def go_unquote(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    try:
        return str(json.loads(lit))
    except ValueError:
        return lit[1:-1].encode().decode("unicode_escape", errors="replace")


def go_concat(expr: str, consts: dict[str, str]) -> str | None:
    """The value of a `+` concatenation of string literals and known constants; None if anything else."""
    out = []
    for tok in re.findall(GO_STRING + r"|[A-Za-z_][\w.]*|\+|\S", expr):
        if tok == "+":
            continue
        if tok[0] in "\"`":
            out.append(go_unquote(tok))
        elif tok in consts:
            out.append(consts[tok])
        else:
            return None
    return "".join(out) if out else None


def split_top(s: str, sep: str = ",") -> list[str]:
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        c = s[i]
        m = re.match(GO_STRING, s[i:]) if c in "\"`" else None
        if m:
            cur.append(m.group(0))
            i += len(m.group(0))
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def balanced(s: str, open_at: int) -> str:
    """Text between the bracket at `open_at` and its partner (string literals skipped)."""
    depth, i = 0, open_at
    while i < len(s):
        c = s[i]
        if c in "\"`":
            m = re.match(GO_STRING, s[i:])
            if m:
                i += len(m.group(0))
                continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return s[open_at + 1: i]
        i += 1
    return s[open_at + 1:]


def trufflehog(gd: Path, commit: str) -> Iterator[dict[str, Any]]:
    files = [p for p in git(gd, "ls-tree", "-r", "--name-only", commit, "pkg/detectors").splitlines()
             if p.endswith("_test.go") and "integration" not in p and p.count("/") >= 3]
    for path in sorted(files):
        src = git(gd, "show", f"{commit}:{path}")
        consts = {m.group(1): v for m in GO_DEF.finditer(src) if (v := go_concat(m.group(2), {})) is not None}
        family = re.sub(r"/v\d+$", "", path.split("/", 2)[2].rsplit("/", 1)[0]).replace("/", "-")
        words = detector_keywords(gd, commit, path.rsplit("/", 1)[0])
        seen: set[str] = set()
        for m in re.finditer(r"want:\s*\[\]string\{", src):
            line = src.count("\n", 0, m.start()) + 1
            for item in split_top(balanced(src, m.end() - 1)):
                value = go_concat(item, consts)
                if not value or value in seen or len(value) < 8 or (len(value) > 600 and not PEM.search(value)):
                    continue
                seen.add(value)
                yield case("trufflehog", "trufflesecurity/trufflehog", commit, path, line, family, value, words)


def detector_keywords(gd: Path, commit: str, folder: str) -> list[str]:
    names = [p for p in git(gd, "ls-tree", "--name-only", commit, folder + "/").splitlines()
             if p.endswith(".go") and not p.endswith("_test.go")]
    for p in names:
        m = KEYWORDS.search(git(gd, "show", f"{commit}:{p}"))
        if m:
            return [go_unquote(k) for k in re.findall(GO_STRING, m.group(1))][:4]
    return []


def gitleaks(gd: Path, commit: str) -> Iterator[dict[str, Any]]:
    files = [p for p in git(gd, "ls-tree", "--name-only", commit, "cmd/generate/config/rules/").splitlines()
             if p.endswith(".go") and not p.endswith("_test.go")]
    for path in sorted(files):
        src = git(gd, "show", f"{commit}:{path}")
        for fm in re.finditer(r"(?m)^func \w+\(\) \*config\.Rule \{", src):
            body_start = fm.end() - 1
            body = balanced(src, body_start)
            rid = re.search(r'RuleID:\s*"([^"]+)"', body)
            if not rid:
                continue
            kw = re.search(r"Keywords:\s*\[\]string\{([^}]*)\}", body)
            words = [go_unquote(k) for k in re.findall(GO_STRING, kw.group(1))][:4] if kw else []
            rng = random.Random(f"gitleaks:{rid.group(1)}")
            for sm in re.finditer(r"(?m)^\s*(tps|fps)\s*:?=\s*", body):
                label = "positive" if sm.group(1) == "tps" else "negative"
                stmt_end = re.compile(r"(?m)^\s*(?:tps|fps)\s*:?=|^\s*return ").search(body, sm.end())
                stmt = body[sm.end(): stmt_end.start() if stmt_end else len(body)]
                line = src.count("\n", 0, body_start + 1 + sm.start()) + 1
                for expr in go_items(stmt):
                    text = go_eval(expr, rng)
                    value = secret_in(text) if text else None
                    if value:
                        yield case("gitleaks", "gitleaks/gitleaks", commit, path, line, rid.group(1), value, words,
                                   label, whole=text)


def go_items(stmt: str) -> Iterator[str]:
    """The string expressions of a tps/fps statement: generator calls' secret arguments and list items."""
    stmt = re.sub(r"(?m)//.*$", "", stmt)
    for m in re.finditer(r"utils\.GenerateSampleSecrets?\(", stmt):
        args = split_top(balanced(stmt, m.end() - 1))
        if len(args) >= 2:
            yield args[1]
    stmt = re.sub(r"utils\.GenerateSampleSecrets?\(", "IGNORED(", stmt)
    for m in re.finditer(r"\[\]string\{|append\(", stmt):
        inner = balanced(stmt, m.end() - 1)
        for item in split_top(inner):
            if not item.startswith(("IGNORED(", "tps", "fps")) and not item.endswith("..."):
                yield item


# gitleaks' pattern helpers (cmd/generate/config/utils/patterns.go)
UTILS = {"Numeric": "[0-9]{%s}", "Hex": "[a-f0-9]{%s}", "AlphaNumeric": "[a-z0-9]{%s}",
         "AlphaNumericExtendedShort": "[a-z0-9_-]{%s}", "AlphaNumericExtended": "[a-z0-9=_\\-]{%s}",
         "AlphaNumericExtendedLong": "[a-z0-9\\/=_\\+\\-]{%s}",
         "Hex8_4_4_4_12": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"}


def go_eval(expr: str, rng: random.Random) -> str | None:
    out = []
    for part in split_top(expr, "+"):
        if part[0] in "\"`":
            out.append(go_unquote(part))
            continue
        m = re.fullmatch(r"secrets\.NewSecret\((.*)\)", part, re.S)
        if not m:
            return None
        regex = ""
        for piece in split_top(m.group(1).strip(), "+"):
            um = re.fullmatch(r'utils\.(\w+)\("?(\d*)"?\)', piece)
            if um and um.group(1) in UTILS:
                regex += UTILS[um.group(1)].replace("%s", um.group(2))
            elif piece[:1] in "\"`":
                regex += go_concat(piece, {}) or ""
            else:
                return None
        try:
            out.append(sample_regex(regex, rng))
        except (ValueError, re.error):
            return None
    return "".join(out)


def detect_secrets(gd: Path, commit: str) -> Iterator[dict[str, Any]]:
    files = [p for p in git(gd, "ls-tree", "--name-only", commit, "tests/plugins/").splitlines()
             if p.endswith("_test.py")]
    for path in sorted(files):
        tree = ast.parse(git(gd, "show", f"{commit}:{path}"))
        family = path.rsplit("/", 1)[1].removesuffix("_test.py")
        if family in ("base", "high_entropy_strings", "keyword", "ip_public"):
            continue  # generic detectors: their rows test the scanner's line heuristics, not credential formats
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            src = ast.unparse(fn)
            one_each = "len(output) == 1" in src or "== 1" in src
            for dec in fn.decorator_list:
                if not (isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith("parametrize") and len(dec.args) >= 2):
                    continue
                try:
                    names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                    rows = ast.literal_eval(dec.args[1])
                except (ValueError, SyntaxError, AttributeError):
                    continue
                flag = next((i for i, n in enumerate(names) if n in ("should_flag", "expected", "is_secret")), None)
                for row in rows:
                    row = row if isinstance(row, tuple) else (row,)
                    text = row[0] if row and isinstance(row[0], str) else None
                    if text is None:
                        continue
                    if flag is not None and isinstance(row[flag], bool):
                        label = "positive" if row[flag] else "negative"
                    elif one_each:
                        label = "positive"
                    else:
                        continue
                    value = secret_in(text)
                    if value:
                        yield case("detect-secrets", "Yelp/detect-secrets", commit, path, dec.lineno, family, value,
                                   [], label, whole=text)


# -- records ---------------------------------------------------------------------------------------------------


def case(source: str, repo: str, commit: str, path: str, line: int, family: str, value: str, words: list[str],
         label: str = "positive", whole: str | None = None) -> dict[str, Any]:
    if re.search(r"[{}\"' ]", value) and not PEM.search(value):  # a JSON or quoted want: its credential
        value = secret_in(value) or value
    parts = [value]
    if "://" not in value and not PEM.search(value) and value.count(":") >= 1:
        split = [p for p in value.split(":") if p]
        if len(split) >= 2 and all(len(p) >= 6 for p in split):
            parts = split
    if label != "negative" and (is_placeholder(value) or (whole is not None and is_placeholder(whole))):
        label = "placeholder"
    if label == "negative" and not (is_placeholder(value) or (whole is not None and is_placeholder(whole))):
        label = "near-miss"  # a scanner's negative that is not obviously a placeholder: dropped below
    return {"source": source, "repo": repo, "commit": commit, "path": path, "line": line,
            "family": f"{source}:{family}", "label": label, "words": words, "_parts": parts,
            "sha256": hashlib.sha256(value.encode()).hexdigest()[:16]}


def finish(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shapes for every part, with fixed prefixes learned within each family; duplicates dropped."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_family[r["family"]].extend(r["_parts"])
    prefix: dict[tuple[str, str], int] = {}
    for fam, values in by_family.items():
        uniq = sorted(set(values))
        for v, n in zip(uniq, common_prefix_lengths(uniq), strict=True):
            prefix[(fam, v)] = n
    out, seen = [], set()
    for r in records:
        if r["label"] == "near-miss":
            continue
        shapes = [shape_of(p, prefix[(r["family"], p)]) for p in r.pop("_parts")]
        key = (r["family"], r["label"], json.dumps(shapes, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        out.append({**r, "shapes": shapes})
    return out


def negatives(mirrors: Path) -> list[dict[str, Any]]:
    out = []
    for repo in NEGATIVE_REPOS:
        gd = git_dir(mirrors, repo)
        commit = head(gd)
        listing = git(gd, "ls-tree", "-r", "-l", commit)
        picked: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row in listing.splitlines():
            meta, path = row.split("\t", 1)
            _mode, kind, sha, size = meta.split()
            if kind != "blob" or size == "-" or int(size) > MAX_FILE_BYTES or int(size) < 40:
                continue
            if re.search(r"(?i)(?:^|/)(?:test|tests|testdata|fixtures?)/", path):
                continue  # test fixtures may hold deliberate fake secrets
            for ftype, rx in FILE_TYPES:
                if rx.search(path):
                    order = hashlib.sha256(f"{repo}:{path}".encode()).hexdigest()
                    picked[ftype].append((order, path, sha))
                    break
        for ftype, items in sorted(picked.items()):
            for _, path, sha in sorted(items)[:PER_REPO_TYPE]:
                data = git(gd, "cat-file", "-p", sha).encode()
                out.append({"repo": repo, "commit": commit, "path": path, "type": ftype, "blob": sha,
                            "sha256": hashlib.sha256(data).hexdigest()})
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.yardstick.extract")
    ap.add_argument("--mirrors", type=Path, default=MIRRORS)
    args = ap.parse_args(argv)
    records: list[dict[str, Any]] = []
    for repo, fn in (("trufflesecurity/trufflehog", trufflehog), ("gitleaks/gitleaks", gitleaks),
                     ("Yelp/detect-secrets", detect_secrets)):
        gd = git_dir(args.mirrors, repo)
        records.extend(fn(gd, head(gd)))
    cases = finish(records)
    CASES.write_text("".join(json.dumps(c, sort_keys=True) + "\n" for c in cases))
    negs = negatives(args.mirrors)
    NEGATIVES.write_text("".join(json.dumps(n, sort_keys=True) + "\n" for n in negs))
    labels = defaultdict(int)
    for c in cases:
        labels[f"{c['source']}/{c['label']}"] += 1
    print(f"{len(cases)} cases ({dict(sorted(labels.items()))}); {len(negs)} negative files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
