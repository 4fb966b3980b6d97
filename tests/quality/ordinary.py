"""Ordinary coding conversations built from real source files: the false-positive baseline.

Selection rule (not hand-picked): every top-level module of this interpreter's standard library whose file
name starts with a–m, plus the first 30 modules (sorted by path) of each of the installed packages `grpc`,
`yaml` and `jsonschema`; files over 200 KB are skipped. The only edit is dropping authorship/licence lines
(`strip_headers`): in the first 40 lines, lines mentioning copyright, author, licen[cs]e, maintainer or
contributor or holding an e-mail address; anywhere, `__author__` / `__email__` / `__credits__` /
`__maintainer__` assignments (with their continuation lines) and comment lines that credit someone (an
author/contributor keyword or a `Name <user@host>` credit). The report scans the dropped lines too and
lists what the packs flag in them; every other line is kept, so whatever the packs flag in real code is
reported as a false positive. Files are cut into chunks of at most CHUNK characters (on line boundaries);
each chunk is one multi-turn agent session (read_file tool call, tool result, discussion, an edit call
quoting a few real lines), rotated over the providers.
"""

from __future__ import annotations

import importlib.util
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from tests.quality.corpus import CHAT_APIS, SYSTEM, Case, _Rotor, call_id, case_rng
from tests.quality.render import Conversation, Turn, envelope, render, serialise

CHUNK = 40_000
MAX_FILE = 200_000
PACKAGES = ("grpc", "yaml", "jsonschema")
PER_PACKAGE = 30
_HEADER = re.compile(r"(?i)copyright|\bauthor|licen[cs]e|maintainer|contributor")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_CREDIT = re.compile(r"(?i)\bauthor|contributed|written by|tweaks by|maintainer|<[^<>\s]+@[^<>\s]+>")
_DUNDER = re.compile(r"^\s*__(author|email|credits|maintainer)__\s*=")

ASKS = (
    "Read {path} and explain how the main entry point works.",
    "There's a bug report about {path}: behaviour changed after the last upgrade. Have a look.",
    "Can you add type hints to {path}? Start by reading it.",
    "Summarise what {path} does and where it is fragile.",
)
FOLLOW_UPS = (
    "OK. Please add a short comment above that block explaining the edge case.",
    "Makes sense. Make the smallest change that documents it.",
)


def source_files() -> list[tuple[str, Path]]:
    """(display path, file) for every file the selection rule picks, in a stable order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [(f"cpython/Lib/{p.name}", p) for p in sorted(stdlib.glob("*.py")) if "a" <= p.name[0] <= "m"]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(p for p in root.rglob("*.py") if "tests" not in p.relative_to(root).parts)[:PER_PACKAGE]
        out += [(f"{name}/{p.relative_to(root)}", p) for p in files]
    return [(d, p) for d, p in out if p.stat().st_size <= MAX_FILE]


def strip_headers(text: str) -> tuple[list[str], list[int], list[tuple[int, str]]]:
    """Kept lines, their 1-based line numbers in the original file, and the dropped (number, line) pairs."""
    kept, numbers, dropped = [], [], []
    depth = 0  # open brackets of a dunder credit assignment still running
    for i, line in enumerate(text.split("\n"), 1):
        drop = depth > 0 or bool(_DUNDER.match(line))
        if drop:
            depth = max(0, depth + sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}"))
        else:
            header = i <= 40 and bool(_HEADER.search(line) or _EMAIL.search(line))
            drop = header or (line.lstrip().startswith("#") and bool(_CREDIT.search(line)))
        if drop:
            dropped.append((i, line))
        else:
            kept.append(line)
            numbers.append(i)
    return kept, numbers, dropped


def chunks(lines: list[str], numbers: list[int]) -> Iterator[tuple[str, list[int]]]:
    buf: list[str] = []
    nums: list[int] = []
    size = 0
    for line, n in zip(lines, numbers, strict=True):
        if size + len(line) + 1 > CHUNK and buf:
            yield "\n".join(buf), nums
            buf, nums, size = [], [], 0
        buf.append(line)
        nums.append(n)
        size += len(line) + 1
    if buf:
        yield "\n".join(buf), nums


def ordinary() -> Iterator[Case]:
    rotor = _Rotor()
    for display, path in source_files():
        lines, numbers, dropped = strip_headers(path.read_text("utf-8", "replace"))
        DROPPED.extend((display, n, line) for n, line in dropped)
        for c_i, (text, nums) in enumerate(chunks(lines, numbers)):
            rng = case_rng("ordinary", display, c_i)
            cid = call_id(rng)
            edit_id = call_id(rng)
            body_lines = text.split("\n")
            start = rng.randrange(0, max(1, len(body_lines) - 4))
            fragment = "\n".join(body_lines[start : start + 4])
            turns = [
                Turn("user", rng.choice(ASKS).format(path=display)),
                Turn("tool_call", name="read_file", args={"path": display, "offset": nums[0]}, call_id=cid),
                Turn("tool_result", text, name="read_file", call_id=cid),
                Turn("assistant", f"`{display}` is read top to bottom once at import; the interesting part is around "
                                  f"line {nums[start]}, where the fallback path is taken."),
                Turn("user", rng.choice(FOLLOW_UPS)),
                Turn("tool_call", name="str_replace_based_edit_tool",
                     args={"command": "str_replace", "path": display, "old_str": fragment,
                           "new_str": "# NOTE: fallback path, see discussion\n" + fragment}, call_id=edit_id),
                Turn("tool_result", "The file has been edited.", name="str_replace_based_edit_tool", call_id=edit_id),
                Turn("assistant", "Added the comment; no behaviour change."),
            ]
            api = rotor.api(CHAT_APIS + ("openai.responses",))
            r = render(api, Conversation(SYSTEM, turns))
            origin = [(r.locs[2], display, 0)]  # tool result: finding offsets map to lines via `line_of`
            case = Case(id=f"{display}#{c_i}", label="ordinary", api=api, envelope=envelope(api, serialise(r.body)),
                        placement="ordinary", note=display, origin=origin)
            case.surfaces = (text,)
            _LINES[case.id] = nums
            yield case


_LINES: dict[str, list[int]] = {}
DROPPED: list[tuple[str, int, str]] = []  # (file, line number, line) removed by strip_headers


def line_of(case: Case, text: str, offset: int) -> int | None:
    """Original file line of a character offset inside the chunk text of an ordinary case."""
    nums = _LINES.get(case.id)
    if not nums or not case.surfaces or text != case.surfaces[0]:
        return None
    return nums[min(text.count("\n", 0, offset), len(nums) - 1)]
