"""The labelled corpus: positives for every kind × placement and kind × evasion, in every provider format.

Every case is a real HTTP request (`Envelope`) for the pipeline. A positive records its kind, category,
placement, evasion, provider, the location prefix of the planted text and the forms ("surfaces") the value
takes in the decoded segments; scoring (measure.py) finds it there. Deterministic: each case has its own
`random.Random` seeded from a string naming it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from filter.model import Envelope
from tests.quality import snippets as sn
from tests.quality.kinds import KINDS, Kind, uuid4
from tests.quality.render import Conversation, Turn, envelope, render, serialise

SEED = "llm-content-filter/quality/v1"
CHAT_APIS = ("openai.chat", "anthropic", "gemini", "bedrock", "azure", "bedrock.invoke")
PLACEMENTS = ("system", "user", "assistant", "tool_call_args", "tool_result", "responses_input", "document",
              "history", "code_file", "log")
READ_PLACEMENTS = ("tool_call_args", "responses_input", "history")
EVASIONS = ("unicode_escape", "escaped_slashes", "pem_escaped_newlines", "gzip", "deflate", "percent_encoded",
            "json_in_json", "base64_document")
EXTRA_VALUES = 4  # more plain cases per kind with fresh values (generator variety)


@dataclass
class Case:
    id: str
    label: str  # positive | negative | ordinary
    api: str
    envelope: Envelope
    kind: str = ""
    group: str = ""
    categories: frozenset[str] = frozenset()
    placement: str = ""
    evasion: str = "none"
    loc: str = ""
    value: str = ""  # the planted value as generated
    surfaces: tuple[str, ...] = ()
    related: tuple[str, ...] = ()  # the planted item's own file path in the scaffolding (the read, the heredoc)
    note: str = ""
    origin: list[tuple[str, str, int]] = field(default_factory=list)  # ordinary: (location prefix, file, line)


def case_rng(*parts: object) -> random.Random:
    return random.Random(":".join([SEED, *map(str, parts)]))


# -- conversation scaffolding ---------------------------------------------------------------------------------

SYSTEM = (
    "You are an autonomous coding agent working in the user's repository. Use the tools to read and edit "
    "files and to run commands. Keep answers short; show diffs for every change."
)
FILLER_CODE = (
    '''def chunked(items, size):
    """Yield successive lists of at most `size` items."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
''',
    '''export function debounce(fn, wait = 200) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
''',
    '''func Retry(ctx context.Context, attempts int, fn func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(i+1) * 100 * time.Millisecond):
		}
	}
	return err
}
''',
    '''class LRUCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict[str, object] = OrderedDict()

    def get(self, key: str) -> object | None:
        if key not in self.data:
            return None
        self.data.move_to_end(key)
        return self.data[key]
''',
    '''SELECT o.id, o.created_at, SUM(li.quantity * li.unit_price) AS total
FROM orders o
JOIN line_items li ON li.order_id = o.id
WHERE o.created_at >= NOW() - INTERVAL '7 days'
GROUP BY o.id, o.created_at
ORDER BY total DESC
LIMIT 20;
''',
    '''name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install -e '.[dev]' && pytest -q
''',
)
FILLER_ASKS = (
    "Can you add a unit test for this?", "Refactor this to be more readable, keep behaviour.",
    "Why is this slow on large inputs?", "Add type hints please.", "Explain what this does.",
    "Rename the variables so they describe what they hold.",
)
FILLER_ANSWERS = (
    "The loop is fine; the cost is the repeated list copy. I moved it out of the loop and added a test.",
    "Done — I split the function in two and kept the public signature unchanged.",
    "This retries with a linear backoff and stops early when the context is cancelled.",
    "I added annotations and ran mypy; no new errors.",
)


def filler_turns(rng: random.Random, pairs: int) -> list[Turn]:
    turns: list[Turn] = []
    for _ in range(pairs):
        src = rng.choice(FILLER_CODE)
        if rng.random() < 0.5:
            turns.append(Turn("user", f"{rng.choice(FILLER_ASKS)}\n\n```\n{src}```"))
            turns.append(Turn("assistant", rng.choice(FILLER_ANSWERS)))
        else:
            cid = call_id(rng)
            path = rng.choice(["src/utils/batching.py", "web/src/hooks/debounce.js", "pkg/retry/retry.go",
                               "app/cache.py", "db/reports/weekly.sql", ".github/workflows/ci.yml"])
            turns.append(Turn("tool_call", name="read_file", args={"path": path}, call_id=cid))
            turns.append(Turn("tool_result", src, name="read_file", call_id=cid))
            turns.append(Turn("assistant", rng.choice(FILLER_ANSWERS)))
    return turns


def call_id(rng: random.Random) -> str:
    return "call_" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                             for _ in range(24))


@dataclass
class Plant:
    """What goes into the planted turn: free text, or a tool call (name, args)."""

    text: str = ""
    call: tuple[str, dict[str, Any]] | None = None
    path: str = "notes.txt"  # the file a tool result / document shows


def conversation(placement: str, plant: Plant, rng: random.Random, sub: int = 0) -> tuple[Conversation, int]:
    """A realistic exchange with the planted turn; returns it and the planted turn's index (-1: system)."""
    cid = call_id(rng)
    read = Turn("tool_call", name=rng.choice(["read_file", "Read", "view"]), call_id=cid)
    read.args = {"file_path": plant.path} if read.name == "Read" else {"path": plant.path}
    if placement == "system":
        system = (SYSTEM + "\n\nDeployment notes for this workspace (keep them in mind when running commands):\n"
                  + plant.text)
        return Conversation(system, [Turn("user", "Deploy the staging build and tell me if the smoke test passes.")]), -1
    if placement in ("user", "code_file_user", "log_user"):
        return Conversation(SYSTEM, [Turn("user", plant.text)]), 0
    if placement == "assistant":
        return Conversation(SYSTEM, [
            Turn("user", "What exactly should I put in the staging config? Use what I sent you earlier."),
            Turn("assistant", "Based on what you sent earlier, the staging config should contain:\n\n" + plant.text),
            Turn("user", "thanks, now run the tests"),
        ]), 1
    if placement == "tool_call":
        assert plant.call is not None
        name, args = plant.call
        return Conversation(SYSTEM, [
            Turn("user", "Set up the deployment config and run it."),
            Turn("tool_call", name=name, args=args, call_id=cid),
            Turn("tool_result", "ok", name=name, call_id=cid),
            Turn("assistant", "Done."),
        ]), 1
    if placement == "tool_result":
        return Conversation(SYSTEM, [
            Turn("user", "Production is failing since this morning, find out why."),
            read,
            Turn("tool_result", plant.text, name=read.name, call_id=cid),
            Turn("assistant", "The file is loaded at startup; the failure comes from the value on the highlighted line."),
        ]), 2
    if placement == "document":
        return Conversation(SYSTEM, [Turn("document", plant.text, filename=plant.path.rsplit("/", 1)[-1])]), 0
    if placement == "history":
        early: list[Turn]
        if plant.call is not None:
            name, args = plant.call
            early = [Turn("user", "Check the config on this box."), Turn("tool_call", name=name, args=args, call_id=cid),
                     Turn("tool_result", "(output omitted)", name=name, call_id=cid)]
            at = 1
        elif sub % 2 == 0:
            early, at = [Turn("user", plant.text), Turn("assistant", "Thanks, I'll use that.")], 0
        else:
            early = [Turn("user", "Look at the config first."), read,
                     Turn("tool_result", plant.text, name=read.name, call_id=cid)]
            at = 2
        turns = early + filler_turns(rng, rng.randrange(8, 13)) + [Turn("user", "Now run the full test suite.")]
        return Conversation(SYSTEM, turns), at
    raise ValueError(placement)


# -- per-kind plants -------------------------------------------------------------------------------------------

READ_TOOLS = ("read_file", "Read", "view", "bash", "Bash", "run_shell_command")


def read_call(path: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    tool = rng.choice(READ_TOOLS)
    if tool == "Read":
        return tool, {"file_path": path}
    if tool in ("read_file", "view"):
        return tool, {"path": path}
    cmd = rng.choice([f"cat {path}", f"head -n 50 {path}", f"grep -n '' {path} | head", f"cat {path} | base64"])
    return tool, ({"command": cmd, "description": "Show the file"} if tool == "Bash" else {"command": cmd})


def write_call(text: str, path: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    tool = rng.choice(["write_file", "Write", "str_replace_based_edit_tool"])
    if tool == "Write":
        return tool, {"file_path": path, "content": text}
    if tool == "write_file":
        return tool, {"path": path, "content": text}
    return tool, {"command": "create", "path": path, "file_text": text}


def shell_call(kind: Kind, value: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    name = sn.var_name(kind, rng)
    if kind.group == "pii":
        cmd = f"psql \"$DATABASE_URL\" -c \"UPDATE customers SET {name.lower()} = '{value}' WHERE id = 1042\""
    elif kind.prose and kind.group in ("token", "connection-string"):
        cmd = sn.prose(kind, value, rng) if kind.group == "token" else f"{name}='{value}' ./scripts/migrate.sh"
        cmd = cmd if kind.group == "connection-string" else cmd.split("\n")[-1]
    else:
        cmd = f"{name}={value} ./scripts/deploy.sh --env production"
    tool = rng.choice(["bash", "Bash", "run_shell_command"])
    return tool, ({"command": cmd, "description": "Deploy"} if tool == "Bash" else {"command": cmd})


def text_for(kind: Kind, value: str, placement: str, rng: random.Random, sub: int) -> tuple[str, str]:
    """(text, path) carrying the value for a text placement."""
    if placement == "code_file":
        lang = sn.LANGS[sub % len(sn.LANGS)]
        text, lang = sn.code(kind, value, lang, rng)
        return text, sn.FILE_OF.get(lang, "src/main.txt")
    if placement == "log":
        return sn.log(kind, value, rng), "logs/worker.log"
    if kind.group == "file":
        return (value if placement in ("tool_result", "document") else sn.prose(kind, value, rng)), kind.filename
    if placement in ("tool_result", "document"):
        lang = sn.LANGS[sub % len(sn.LANGS)]
        text, lang = sn.code(kind, value, lang, rng)
        return text, sn.FILE_OF.get(lang, "src/main.txt")
    return sn.prose(kind, value, rng), "notes.txt"


def plant_for(kind: Kind, value: str, placement: str, rng: random.Random, sub: int) -> tuple[str, Plant]:
    """(placement used by `conversation`, plant)."""
    if kind.group == "tool-read":
        return ("tool_call" if placement != "history" else "history"), Plant(call=read_call(value, rng))
    if placement == "tool_call_args":
        if kind.multiline or kind.group in ("generic", "pii") or sub % 2 == 0:
            text, path = text_for(kind, value, "code_file", rng, sub)
            return "tool_call", Plant(call=write_call(text, path, rng))
        return "tool_call", Plant(call=shell_call(kind, value, rng))
    if placement == "code_file":
        text, path = text_for(kind, value, "code_file", rng, sub)
        if sub % 2:
            return "tool_result", Plant(text=text, path=path)
        return "user", Plant(text=f"Why does this fail in CI?\n\n```{sn.FENCE.get(path, '')}\n{text}```")
    if placement == "log":
        text, path = text_for(kind, value, "log", rng, sub)
        if sub % 2:
            return "tool_result", Plant(text=text, path=path)
        return "user", Plant(text=f"I'm getting this, any idea?\n```\n{text}\n```")
    if placement == "history":
        text, path = text_for(kind, value, "tool_result" if sub % 2 else "user", rng, sub)
        return "history", Plant(text=text, path=path)
    text, path = text_for(kind, value, placement, rng, sub)
    return placement, Plant(text=text, path=path)


# -- evasions ----------------------------------------------------------------------------------------------------

SAFE_PCT = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def pct(value: str) -> str:
    """Percent-encode every character outside [A-Za-z0-9.-] (as a client that over-encodes `_` does)."""
    return "".join(c if c in SAFE_PCT else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def unicode_escaped(value: str, rng: random.Random) -> str:
    """The JSON-string form of `value` with some characters (always two of the first four) as \\uXXXX."""
    forced = set(rng.sample(range(min(4, len(value))), min(2, len(value))))
    out = []
    for i, c in enumerate(value):
        if (i in forced or rng.random() < 0.3) and (c.isalnum() or c in "_-.:/@+=~"):
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(json.dumps(c, ensure_ascii=False)[1:-1])
    return "".join(out)


def json_forms(value: str) -> tuple[str, ...]:
    """Every form the value takes in decoded segments: as text and as JSON-string text; URL-decoded (the
    filter adds `#urldecoded` segments); multi-line values also line by line (a YAML block or a heredoc indents
    them); JSON documents also by their string members (scanned as `…$.key` segments)."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {unquote_plus(f) for f in list(forms)}
    forms |= {ln.strip() for f in list(forms) for ln in f.split("\n") if len(ln.strip()) >= 8}
    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and len(node) >= 8:
            forms |= {node, *(ln.strip() for ln in node.split("\n") if len(ln.strip()) >= 8)}
    return tuple(sorted(forms, key=len, reverse=True))


def applicable(kind: Kind, evasion: str, value: str) -> bool:
    if evasion == "pem_escaped_newlines":
        return kind.group == "private-key"
    if evasion == "percent_encoded":
        return not kind.multiline and (kind.pct is not None or any(c not in SAFE_PCT for c in value))
    if evasion == "base64_document":
        return kind.group != "tool-read"
    if evasion == "escaped_slashes":
        return "/" in value
    return True


# -- cases -------------------------------------------------------------------------------------------------------


class _Rotor:
    def __init__(self) -> None:
        self.n = 0

    def api(self, apis: tuple[str, ...] = CHAT_APIS) -> str:
        self.n += 1
        return apis[self.n % len(apis)]


def _case(cid: str, kind: Kind, placement_label: str, evasion: str, api: str, conv: Conversation, at: int,
          surfaces: tuple[str, ...], rng: random.Random, escape_value: str | None = None, value: str = "") -> Case:
    r = render(api, conv)
    text = serialise(r.body)
    encoding = ""
    if evasion == "unicode_escape":
        assert escape_value is not None
        enc = json.dumps(escape_value, ensure_ascii=False)[1:-1]
        if enc not in text:  # an indented multi-line value: escape its first line (a PEM header) instead
            escape_value = escape_value.split("\n")[0]
            enc = json.dumps(escape_value, ensure_ascii=False)[1:-1]
        escaped = unicode_escaped(escape_value, rng)
        assert enc in text, f"{cid}: value not found as a plain JSON string"
        text = text.replace(enc, escaped)
        surfaces = surfaces + (escaped,)
    elif evasion == "escaped_slashes":
        text = text.replace("/", "\\/")
    elif evasion in ("gzip", "deflate"):
        encoding = evasion
    return Case(id=cid, label="positive", api=api, envelope=envelope(api, text, encoding), kind=kind.name,
                group=kind.group, categories=kind.categories, placement=placement_label, evasion=evasion,
                loc=r.locs[at], value=value, surfaces=surfaces, related=related_paths(kind))


def related_paths(kind: Kind) -> tuple[str, ...]:
    """Paths the scaffolding uses for the planted item's own file: a finding on them (the tool call that reads
    the file before its content is shown, the heredoc that writes a key) is about the same planted item."""
    if kind.group == "file":
        return (kind.filename,)
    if kind.group == "private-key":
        return ("/root/.ssh/id_rsa", "deploy_key.pem", "/etc/secrets/tls.key")
    return ()


def positives(kinds: tuple[Kind, ...] = KINDS) -> Iterator[Case]:
    rotor = _Rotor()
    for k_i, kind in enumerate(kinds):
        placements = READ_PLACEMENTS if kind.group == "tool-read" else PLACEMENTS
        # every placement, no evasion
        for p_i, placement in enumerate(placements):
            rng = case_rng(kind.name, placement)
            value = kind.gen(rng)
            target = placement
            if placement == "responses_input" and kind.group != "tool-read":
                target = ("user", "tool_call_args", "tool_result")[k_i % 3]  # message / function_call / output
            used, plant = plant_for(kind, value, target, rng, p_i + k_i)
            api = ("openai.responses" if placement == "responses_input" else
                   "anthropic" if placement == "document" else rotor.api())
            conv, at = conversation(used, plant, rng, p_i + k_i)
            yield _case(f"{kind.name}/{placement}", kind, placement, "none", api, conv, at, json_forms(value), rng, value=value)
        # fresh values: generator variety
        for i in range(EXTRA_VALUES):
            rng = case_rng(kind.name, "extra", i)
            value = kind.gen(rng)
            placement = "tool_call_args" if kind.group == "tool-read" else ("user", "tool_result", "code_file", "log")[i]
            used, plant = plant_for(kind, value, placement, rng, i + k_i)
            conv, at = conversation(used, plant, rng, i + k_i)
            yield _case(f"{kind.name}/{placement}/v{i}", kind, placement, "none", rotor.api(), conv, at,
                        json_forms(value), rng, value=value)
        # every applicable evasion (escaped PEM newlines: once per template, there is one case per key kind)
        for e_i, evasion in enumerate(EVASIONS):
            for rep in range(len(sn.ESCAPED_PEM) if evasion == "pem_escaped_newlines" else 1):
                case = _evasion_case(kind, evasion, e_i + k_i + rep, rotor, rep)
                if case is not None:
                    yield case


def _evasion_case(kind: Kind, evasion: str, e_i: int, rotor: _Rotor, rep: int = 0) -> Case | None:
    rng = case_rng(kind.name, "evasion", evasion, *((rep,) if rep else ()))
    value = kind.gen(rng)
    for _ in range(30):  # base64-alphabet values: draw until one has the character the evasion is about
        if applicable(kind, evasion, value):
            break
        value = kind.gen(rng)
    else:
        return None
    cid = f"{kind.name}/{evasion}" + (f"/{rep}" if rep else "")
    api = rotor.api()
    read = kind.group == "tool-read"
    surfaces = json_forms(value)

    if evasion == "unicode_escape":
        if read:
            api = rotor.api(("anthropic", "gemini", "bedrock", "bedrock.invoke"))  # tool input: a plain JSON object
            conv, at = conversation("tool_call", Plant(call=read_call(value, rng)), rng)
        else:
            placement = ("user", "tool_result", "system", "assistant", "code_file", "log")[e_i % 6]
            used, plant = plant_for(kind, value, placement, rng, e_i)
            conv, at = conversation(used, plant, rng, e_i)
        return _case(cid, kind, "tool_call_args" if read else placement, evasion, api, conv, at, surfaces, rng,
                     escape_value=value, value=value)

    if evasion == "pem_escaped_newlines":
        escaped = value.replace("\n", "\\n")
        text = sn.escaped_pem(kind, escaped, rng, rep)
        used = ("user", "tool_result")[(rep + e_i) % 2]
        conv, at = conversation(used, Plant(text=text, path="config/signer.json"), rng)
        # the decoder may undo the escapes (a JSON document in a tool result): the plain key is the same item
        return _case(cid, kind, used, evasion, api, conv, at, json_forms(escaped) + json_forms(value), rng, value=value)

    if evasion == "percent_encoded":
        if kind.pct is not None:
            encoded = kind.pct(value, rng)
            text = rng.choice([f"the worker can't connect with {encoded} — is the encoding right?",
                               f"DATABASE_URL={encoded}\nREDIS_URL=redis://cache.internal:6379/0"])
            conv, at = conversation("user", Plant(text=text), rng)
            used = "user"
        else:
            encoded = pct(value)
            param = {"pii": kind.env.lower(), "tool-read": "path"}.get(kind.group, "access_token")
            url = f"https://api.internal.dev/v1/export?{param}={encoded}&format=csv"
            if read:  # an MCP resource read: file:// URI of a path under a directory with a space
                path = value.replace("~", "/home/dev") if value.startswith(("~", "/")) else \
                    f"/Users/dev/My Projects/shop/{value}"
                encoded = "file://" + quote(path)
                call = ("read_resource", {"server": "filesystem", "uri": encoded})
                conv, at = conversation("tool_call", Plant(call=call), rng)
                used = "tool_call_args"
            else:
                style = e_i % 3 + rng.randrange(3)
                used = ("user", "tool_call_args", "log")[style % 3]
                if style % 3 == 0:
                    conv, at = conversation("user", Plant(text=f"this export link returns 500: {url}"), rng)
                elif style % 3 == 1:
                    conv, at = conversation("tool_call", Plant(call=("bash", {"command": f"curl -sf '{url}' -o out.csv"})),
                                            rng)
                else:
                    log = (f'10.0.3.7 - - [02/May/2024:10:14:07 +0000] "GET {url.split(".dev", 1)[1]} HTTP/1.1" 500 '
                           f'0 "-" "python-requests/2.31.0"\n10.0.3.7 - - [02/May/2024:10:14:09 +0000] "GET /healthz '
                           'HTTP/1.1" 200 2 "-" "kube-probe/1.29"')
                    conv, at = conversation("tool_result", Plant(text=log, path="/var/log/nginx/access.log"), rng)
        decoded = unquote_plus(encoded) if kind.pct is None else unquote(encoded)
        return _case(cid, kind, used, evasion, api, conv, at, json_forms(encoded) + json_forms(decoded), rng, value=value)

    if evasion == "json_in_json":
        if read:
            arguments, escaped = _escape_inner(json.dumps({"path": value}), value, rng)
            call = ("mcp_call", {"server": "filesystem", "tool": "read_file", "arguments": arguments})
            conv, at = conversation("tool_call", Plant(call=call), rng)
            used = "tool_call_args"
        elif e_i % 2 == 0 or kind.group in ("file", "token"):
            text, path = text_for(kind, value, "code_file", rng, e_i)
            arguments, escaped = _escape_inner(json.dumps({"path": path, "content": text}), value, rng)
            call = ("mcp_call", {"server": "filesystem", "tool": "write_file", "arguments": arguments})
            conv, at = conversation("tool_call", Plant(call=call), rng)
            used = "tool_call_args"
        else:
            secret_string, escaped = _escape_inner(json.dumps({sn.var_name(kind, rng): value}), value, rng)
            output = json.dumps({"ARN": "arn:aws:secretsmanager:us-east-1:210987654321:secret:prod/api-Xk2Lq9",
                                 "Name": "prod/api", "VersionId": uuid4(rng), "SecretString": secret_string,
                                 "VersionStages": ["AWSCURRENT"]}, indent=2)
            conv, at = conversation("tool_result", Plant(text=output, path="aws secretsmanager get-secret-value"), rng)
            used = "tool_result"
        return _case(cid, kind, used, evasion, api, conv, at, surfaces + (escaped,), rng, value=value)

    if evasion == "base64_document":
        text, path = text_for(kind, value, "document", rng, e_i)
        api = rotor.api(("anthropic", "openai.chat", "openai.responses", "gemini", "bedrock", "bedrock.invoke"))
        conv, at = conversation("document", Plant(text=text, path=path), rng)
        return _case(cid, kind, "document", evasion, api, conv, at, surfaces, rng, value=value)

    # escaped_slashes, gzip, deflate: whole-body transforms over a varied placement
    placements = READ_PLACEMENTS if read else ("user", "tool_call_args", "tool_result", "code_file", "log", "history")
    placement = placements[(e_i + len(kind.name)) % len(placements)]
    if placement == "responses_input":
        placement = "tool_call_args"
    used, plant = plant_for(kind, value, placement, rng, e_i)
    conv, at = conversation(used, plant, rng, e_i)
    return _case(cid, kind, placement, evasion, api, conv, at, surfaces, rng, value=value)


def _escape_inner(inner: str, value: str, rng: random.Random) -> tuple[str, str]:
    """Inner JSON text with `\\/` for slashes and some of the value's characters as \\uXXXX (for an indented
    multi-line value, of its first line); returns the text and the escaped form."""
    target = value
    enc = json.dumps(target)[1:-1]
    if enc not in inner:
        target = value.split("\n")[0]
        enc = json.dumps(target)[1:-1]
    assert enc in inner
    escaped = unicode_escaped(target, rng)
    out = inner.replace(enc, "\x00")
    return out.replace("/", "\\/").replace("\x00", escaped), escaped
