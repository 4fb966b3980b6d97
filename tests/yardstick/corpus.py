"""The yard-stick's requests: every stored case placed in syntaxes and tool-output formats inside provider
requests, and the secret-free files of the negative manifest as tool results. Deterministic: every request has
its own seeded RNG."""

from __future__ import annotations

import hashlib
import html
import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.quality.corpus import Case, json_forms
from tests.quality.render import Conversation, Turn, envelope, render, serialise
from tests.yardstick.placement import FORMATS, STYLES, SYNTAXES, assignments, file_text, ident, part_names, tool_output, words_of
from tests.yardstick.shapes import draw

HERE = Path(__file__).parent
CASES = HERE / "cases.jsonl"
NEGATIVES = HERE / "negatives.jsonl"
MIRRORS = Path("/work/.mirror")
SEED = "llm-content-filter/yardstick/v1"
APIS = ("openai.chat", "anthropic", "gemini", "bedrock", "openai.responses")
PLACEMENTS_PER_CASE = 6  # every positive: six requests, one per tool-output format, syntaxes rotating
PLACEMENTS_PER_OTHER = 2  # scanner negatives and placeholders
SUFFIXES = (["api", "key"], ["token"], ["secret"], ["key"], ["access", "token"], ["secret", "key"])
SYSTEM = "You are a coding agent working in the user's repository. Use the tools to read files and run commands."
CHUNK = 6000  # characters of a negative file per request
CHUNKS_PER_FILE = 3


@dataclass(frozen=True)
class Record:
    """One stored case: a labelled credential shape and where it came from."""

    source: str
    repo: str
    commit: str
    path: str
    line: int
    family: str
    label: str  # positive | negative | placeholder
    words: tuple[str, ...]
    shapes: tuple[dict[str, Any], ...]
    sha256: str


def load(path: Path = CASES) -> list[Record]:
    out = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append(Record(d["source"], d["repo"], d["commit"], d["path"], d["line"], d["family"], d["label"],
                          tuple(d["words"]), tuple(d["shapes"]), d["sha256"]))
    return out


@dataclass
class Placed:
    """A request made from a record (or a negative file) and what it is scored by."""

    case: Case
    record: Record | None = None
    syntax: str = ""
    style: str = ""
    fmt: str = ""
    origin: tuple[str, str, int] = ("", "", 1)  # negative files: (repo, path, first line of the chunk)
    extra: dict[str, Any] = field(default_factory=dict)


def rng_for(*parts: object) -> random.Random:
    return random.Random(":".join([SEED, *map(str, parts)]))


GENERIC_WORDS = {"api", "key", "keys", "token", "tokens", "secret", "secrets", "access", "client", "id", "pat",
                 "auth", "v1", "v2", "v3", "credential", "credentials", "password"}


def base_words(rec: Record) -> list[str]:
    """The vendor words of an identifier: the family name without generic words (its keywords as fallback)."""
    words = [w for w in words_of(rec.family.split(":", 1)[1]) if w not in GENERIC_WORDS][:2]
    if words:
        return words
    for w in rec.words:
        ws = words_of(w)
        if ws and all(x.isalpha() for x in ws) and len(ws) <= 3:
            return ws
    return ["service"]


def conversation(out_tool: str, args: dict[str, object], text: str, rng: random.Random) -> tuple[Conversation, int]:
    cid = "call_" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                            for _ in range(24))
    turns = [Turn("user", rng.choice(["The deploy fails on staging; check the config.",
                                      "Why does the worker not start? Look at the settings.",
                                      "Find where the service credentials are configured."])),
             Turn("tool_call", name=out_tool, args=args, call_id=cid),
             Turn("tool_result", text, name=out_tool, call_id=cid),
             Turn("assistant", "The value on that line is read at startup; I will check how it is loaded.")]
    return Conversation(SYSTEM, turns), 2


def place(rec: Record, index: int, j: int) -> Placed:
    """Request `j` of record number `index`."""
    rng = rng_for(rec.family, rec.sha256, j)
    values = [draw(s, rng) for s in rec.shapes]
    multiline = any("\n" in v for v in values)
    fmt = FORMATS[(index + j) % len(FORMATS)]
    names = [s for s, (_, _, ml) in SYNTAXES.items() if ml or not multiline]
    syntax = names[(index * PLACEMENTS_PER_CASE + j) % len(names)]
    styles, path, _ = SYNTAXES[syntax]
    style = styles[(index + 2 * j) // len(names) % len(styles)]
    base = base_words(rec)
    idents = [ident(w, style) for w in part_names(base, len(values), SUFFIXES[(index + j) % len(SUFFIXES)])]
    text = file_text(syntax, assignments(syntax, idents, values))
    out = tool_output(fmt, path, text, idents[0])
    conv, at = conversation(out.tool, out.args, out.text, rng)
    api = APIS[(index * PLACEMENTS_PER_CASE + j) % len(APIS)]
    r = render(api, conv)
    surfaces: set[str] = set()
    for v in values:
        surfaces |= set(json_forms(v)) | {html.escape(v), html.escape(v, quote=False)}
    case = Case(id=f"{rec.family}#{rec.sha256}/{j}", label="positive" if rec.label == "positive" else "negative",
                api=api, envelope=envelope(api, serialise(r.body)), kind=rec.family, group=rec.source,
                categories=frozenset({"secret"}), placement=syntax, loc=r.locs[at],
                surfaces=tuple(sorted(surfaces, key=len, reverse=True)), note=rec.label,
                related=(path,) if rec.label == "positive" else ())  # the read of the file holding the value
    return Placed(case, rec, syntax, style, fmt)


def placed(records: list[Record]) -> Iterator[Placed]:
    for i, rec in enumerate(records):
        n = PLACEMENTS_PER_CASE if rec.label == "positive" else PLACEMENTS_PER_OTHER
        for j in range(n):
            yield place(rec, i, j)


# -- negative files --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NegativeFile:
    repo: str
    commit: str
    path: str
    type: str
    blob: str
    sha256: str


def negative_manifest(path: Path = NEGATIVES) -> list[NegativeFile]:
    return [NegativeFile(**{k: d[k] for k in ("repo", "commit", "path", "type", "blob", "sha256")})
            for d in map(json.loads, path.read_text().splitlines())]


def read_blobs(files: list[NegativeFile], mirrors: Path = MIRRORS) -> dict[NegativeFile, str]:
    """File texts from the repositories' checkouts (`<owner>+<name>/repo`); files whose checkout is missing or
    whose content does not match the manifest's sha256 are left out."""
    out: dict[NegativeFile, str] = {}
    by_repo: dict[str, list[NegativeFile]] = {}
    for f in files:
        by_repo.setdefault(f.repo, []).append(f)
    for repo, fs in by_repo.items():
        gd = mirrors / repo.replace("/", "+") / "repo"
        if not gd.is_dir():
            continue
        proc = subprocess.run(["git", f"--git-dir={gd}", "cat-file", "--batch"], check=False, capture_output=True,
                              input="".join(f.blob + "\n" for f in fs).encode())
        data, pos = proc.stdout, 0
        for f in fs:
            header_end = data.index(b"\n", pos)
            header = data[pos:header_end].split()
            if len(header) < 3:
                pos = header_end + 1
                continue
            size = int(header[2])
            blob = data[header_end + 1: header_end + 1 + size]
            pos = header_end + 1 + size + 1
            if hashlib.sha256(blob).hexdigest() == f.sha256:
                out[f] = blob.decode("utf-8", errors="replace")
    return out


def chunks(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, chunk) pieces of at most CHUNK characters, cut at line ends."""
    lines = text.split("\n")
    start, buf, size = 1, [], 0
    for n, ln in enumerate(lines, 1):
        if buf and size + len(ln) + 1 > CHUNK:
            yield start, "\n".join(buf)
            start, buf, size = n, [], 0
        buf.append(ln)
        size += len(ln) + 1
    if buf:
        yield start, "\n".join(buf)


NEG_FORMATS = ("plain", "line-numbered", "unified diff", "ANSI transcript")


def negative_requests(texts: dict[NegativeFile, str]) -> Iterator[Placed]:
    for i, (f, text) in enumerate(sorted(texts.items(), key=lambda kv: (kv[0].repo, kv[0].path))):
        for c_i, (first, chunk) in enumerate(list(chunks(text))[:CHUNKS_PER_FILE]):
            rng = rng_for("negative", f.repo, f.path, c_i)
            fmt = NEG_FORMATS[(i + c_i) % len(NEG_FORMATS)]
            if fmt == "line-numbered":
                out_text = "\n".join(f"{n:>6}→{ln}" for n, ln in enumerate(chunk.split("\n"), first))
                tool, args = "Read", {"file_path": f.path, "offset": first}
            elif fmt == "unified diff":
                body = "\n".join("+" + ln for ln in chunk.split("\n"))
                out_text = (f"diff --git a/{f.path} b/{f.path}\nnew file mode 100644\n--- /dev/null\n+++ b/{f.path}\n"
                            f"@@ -0,0 +{first},{chunk.count(chr(10)) + 1} @@\n{body}")
                tool, args = "bash", {"command": f"git show --stat -p HEAD -- {f.path}"}
            elif fmt == "ANSI transcript":
                out_text = f"{CSI_PROMPT}cat {f.path}\n{chunk}\n{CSI_PROMPT}"
                tool, args = "bash", {"command": f"cat {f.path}"}
            else:
                out_text, tool, args = chunk, "read_file", {"path": f.path}
            conv, at = conversation(tool, args, out_text, rng)
            api = APIS[(i + c_i) % len(APIS)]
            r = render(api, conv)
            case = Case(id=f"{f.repo}:{f.path}#{c_i}", label="ordinary", api=api,
                        envelope=envelope(api, serialise(r.body)), placement=f.type, loc=r.locs[at], note=fmt)
            yield Placed(case, None, "", "", fmt, (f.repo, f.path, first), {"type": f.type})


CSI_PROMPT = "\x1b[1;32mdev@box\x1b[0m:\x1b[1;34m~/src\x1b[0m$ "
_ = STYLES  # every identifier style is reachable through SYNTAXES
