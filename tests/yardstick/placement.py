"""Places a value in a config/code syntax, shows that file through an agent tool's output format and wraps the
exchange into a provider request (tests/quality/render.py)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

STYLES = ("snake", "upper", "camel", "pascal", "kebab", "dotted")
# syntax -> (identifier styles it takes, file path, whether a multi-line value fits)
SYNTAXES: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "assign (=)": (("snake", "upper", "camel"), "app/settings.py", False),
    "properties (dotted =)": (("dotted",), "src/main/resources/application.properties", False),
    "walrus (:=)": (("camel", "pascal"), "internal/config/config.go", False),
    "colon (YAML)": (("snake", "camel", "kebab", "dotted"), "deploy/values.yaml", True),
    "arrow (=>)": (("snake", "camel", "kebab"), "config/services.php", False),
    "xml": (("camel", "pascal", "kebab", "dotted"), "web.config", False),
    "json": (("snake", "camel", "pascal", "upper"), "config/secrets.json", True),
    "toml": (("snake", "kebab"), "config.toml", True),
    "ini": (("snake", "pascal", "dotted"), "app.ini", False),
    ".env": (("upper",), ".env", False),
    "shell export": (("upper",), "scripts/env.sh", True),
    "Dockerfile ENV": (("upper",), "Dockerfile", False),
    "CLI flag": (("kebab",), "scripts/deploy.sh", False),
    "connection string": (("upper", "snake"), "config/database.yml", False),
}
FORMATS = ("plain", "line-numbered", "grep", "unified diff", "ANSI transcript", "Jupyter JSON")


def words_of(text: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def ident(words: list[str], style: str) -> str:
    if style == "snake":
        return "_".join(words)
    if style == "upper":
        return "_".join(words).upper()
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    if style == "kebab":
        return "-".join(words)
    return ".".join(words)


def part_names(base: list[str], n: int, suffix: list[str]) -> list[list[str]]:
    """Names for the parts of a credential: one part takes `suffix` (api key, token, secret…); pairs are an
    id and a secret; three parts add a key in the middle."""
    if n == 1:
        return [base + suffix]
    names = [base + ["id"]] + [base + ["key"]] * (n - 2) + [base + ["secret"]]
    return names


def assignments(syntax: str, names: list[str], values: list[str]) -> list[str]:
    """The lines that carry the values (one per part; multi-line values keep their line breaks)."""
    out = []
    for name, v in zip(names, values, strict=True):
        multi = "\n" in v
        if syntax == "assign (=)":
            out.append(f'{name} = "{v}"')
        elif syntax == "properties (dotted =)":
            out.append(f"{name}={v}")
        elif syntax == "walrus (:=)":
            out.append(f'\t{name} := "{v}"')
        elif syntax == "colon (YAML)":
            out.append(f"  {name}: |\n" + "\n".join("    " + ln for ln in v.strip("\n").split("\n")) if multi
                       else f'  {name}: "{v}"')
        elif syntax == "arrow (=>)":
            out.append(f"        '{name}' => '{v}',")
        elif syntax == "xml":
            out.append(f'    <add key="{name}" value="{html.escape(v)}" />' if len(name) % 2
                       else f"    <{name}>{html.escape(v, quote=False)}</{name}>")
        elif syntax == "json":
            out.append(f"  {json.dumps(name)}: {json.dumps(v)},")
        elif syntax == "toml":
            out.append(f'{name} = """\n{v.strip()}\n"""' if multi else f'{name} = "{v}"')
        elif syntax == "ini":
            out.append(f"{name} = {v}")
        elif syntax == ".env":
            out.append(f"{name}={v}")
        elif syntax == "shell export":
            out.append(f'export {name}="{v}"')
        elif syntax == "Dockerfile ENV":
            out.append(f"ENV {name}={v}" if len(name) % 2 else f"ENV {name} {v}")
        elif syntax == "CLI flag":
            out.append(f"  --{name}={v} \\" if len(name) % 2 else f"  --{name} '{v}' \\")
        elif syntax == "connection string":
            out.append(f"  url: postgresql://{name.lower()}:{v}@db.internal:5432/app" if len(name) % 2 else
                       f'  {name}: "Server=db.internal,1433;Database=app;User Id={name.lower()};Password={v};"')
    return out


def file_text(syntax: str, lines: list[str]) -> str:
    """A small file of that syntax around the lines."""
    body = "\n".join(lines)
    if syntax == "assign (=)":
        return f'import os\n\nDEBUG = False\nALLOWED_HOSTS = ["app.internal"]\n{body}\nTIMEOUT_SECONDS = 30\n'
    if syntax == "properties (dotted =)":
        return f"server.port=8080\nspring.application.name=orders\n{body}\nlogging.level.root=INFO\n"
    if syntax == "walrus (:=)":
        return f'package config\n\nfunc Load() Config {{\n\tport := 8080\n{body}\n\treturn Config{{Port: port}}\n}}\n'
    if syntax == "colon (YAML)":
        return f"replicaCount: 2\nservice:\n  port: 8080\nsecrets:\n{body}\nresources: {{}}\n"
    if syntax == "arrow (=>)":
        return f"<?php\n\nreturn [\n    'mail' => [\n        'driver' => 'smtp',\n{body}\n    ],\n];\n"
    if syntax == "xml":
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n  <appSettings>\n{body}\n'
                "  </appSettings>\n</configuration>\n")
    if syntax == "json":
        return '{\n  "region": "eu-west-1",\n' + body.rstrip(",") + '\n}\n'
    if syntax == "toml":
        return f'[server]\nport = 8080\n\n[credentials]\n{body}\n'
    if syntax == "ini":
        return f"[server]\nport = 8080\n\n[credentials]\n{body}\n"
    if syntax == ".env":
        return f"NODE_ENV=production\nPORT=3000\n{body}\nLOG_LEVEL=info\n"
    if syntax == "shell export":
        return f"#!/usr/bin/env bash\nset -euo pipefail\n{body}\nexport PORT=3000\n"
    if syntax == "Dockerfile ENV":
        return f"FROM python:3.12-slim\nWORKDIR /app\n{body}\nCOPY . .\nCMD [\"python\", \"-m\", \"app\"]\n"
    if syntax == "CLI flag":
        return f"#!/bin/sh\nexec ./bin/worker \\\n  --region eu-west-1 \\\n{body}\n  --verbose\n"
    return f"production:\n  adapter: postgresql\n{body}\n  pool: 5\n"


@dataclass(frozen=True)
class ToolOutput:
    tool: str
    args: dict[str, object]
    text: str


CSI = "\x1b["


def tool_output(fmt: str, path: str, text: str, needle: str) -> ToolOutput:
    """The file as the agent's tool shows it. `needle`: the identifier a grep would search for."""
    lines = text.rstrip("\n").split("\n")
    if fmt == "plain":
        return ToolOutput("read_file", {"path": path}, text)
    if fmt == "line-numbered":
        return ToolOutput("Read", {"file_path": path}, "\n".join(f"{i:>6}→{ln}" for i, ln in enumerate(lines, 1)))
    hits = [i for i, ln in enumerate(lines) if needle in ln] or [len(lines) // 2]
    if fmt == "grep":
        keep = sorted({j for i in hits for j in range(i - 1, i + 2) if 0 <= j < len(lines)})
        out = [f"{path}{':' if j in hits else '-'}{j + 1}{':' if j in hits else '-'}{lines[j]}" for j in keep]
        return ToolOutput("Grep", {"pattern": needle, "output_mode": "content", "-n": True, "-C": 1}, "\n".join(out))
    if fmt == "unified diff":
        first = max(0, hits[0] - 3)
        hunk = [(" " if i not in hits else "+") + ln for i, ln in enumerate(lines) if i >= first]
        removed = sum(1 for i in range(first, len(lines)) if i not in hits)
        head = (f"diff --git a/{path} b/{path}\nindex 3f2a1c4..9be07d2 100644\n--- a/{path}\n+++ b/{path}\n"
                f"@@ -{first + 1},{removed} +{first + 1},{len(lines) - first} @@\n")
        return ToolOutput("bash", {"command": "git diff HEAD~1 -- " + path}, head + "\n".join(hunk))
    if fmt == "ANSI transcript":
        def colour(ln: str) -> str:
            return ln.replace(needle, f"{CSI}01;31m{CSI}K{needle}{CSI}m{CSI}K") if needle in ln else ln
        out = [f"{CSI}35m{CSI}K{path}{CSI}m{CSI}K{CSI}36m{CSI}K:{CSI}m{CSI}K{CSI}32m{CSI}K{j + 1}{CSI}m{CSI}K"
               f"{CSI}36m{CSI}K:{CSI}m{CSI}K{colour(lines[j])}" for j in hits]
        prompt = f"{CSI}1;32mdev@box{CSI}0m:{CSI}1;34m~/app{CSI}0m$ grep --color=always -rn {needle} .\n"
        return ToolOutput("bash", {"command": f"grep --color=always -rn {needle} ."}, prompt + "\n".join(out))
    if fmt == "Jupyter JSON":
        src = [ln + "\n" for ln in ["%%writefile " + path, *lines]]
        nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["## Configuration\n"]},
                        {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [], "source": src}],
              "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        return ToolOutput("read_file", {"path": "notebooks/setup.ipynb"}, json.dumps(nb, indent=1))
    raise ValueError(fmt)
