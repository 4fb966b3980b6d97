"""Dockerfile + .dockerignore: what the image runs, as whom, and that its build context suffices.

No Docker engine runs here: the Dockerfile is parsed, and the package is built as `pip install .`
would build it, from exactly the files .dockerignore lets into the context.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import K8S, ROOT, load_yaml, render_kustomization

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text("utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (JSON array): {args}"
    return value


def _pattern(pat: str) -> re.Pattern[str]:
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return re.compile(rx)


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _pattern(line.lstrip("!").strip("/"))))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = rel.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def context_files() -> list[str]:
    rules = dockerignore()
    out = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.split("/")[0] in (".git", ".venv"):
            continue
        if path.is_file() and not ignored(rel, rules):
            out.append(rel)
    return out


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return next(o for o in render_kustomization(K8S) if o["kind"] == "Deployment")


def test_base_images_and_user(deployment: dict[str, Any]) -> None:
    for word, args in instructions():
        if word == "FROM":
            assert args.split()[0].startswith("python:3.11-slim"), args
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and uid != "0", "numeric, so runAsNonRoot can check it"
    pod = deployment["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"] == 10001
    assert not gid or int(gid) == pod["securityContext"]["runAsGroup"]


def test_entrypoint_cmd_and_ports(deployment: dict[str, Any]) -> None:
    stage = dict(final_stage())
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert exec_form(stage["ENTRYPOINT"]) == ["llm-content-filter"] and "llm-content-filter" in scripts
    assert exec_form(stage["CMD"]) == ["serve", "--config", "/etc/llm-filter/config.yaml"]
    assert set(stage["EXPOSE"].split()) == {"9001", "9464"}
    flt = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}["filter"]
    assert {str(p["containerPort"]) for p in flt["ports"]} == set(stage["EXPOSE"].split())


def test_copy_sources_exist_and_are_in_the_context() -> None:
    rules = dockerignore()
    copies = [args for word, args in instructions() if word == "COPY" and not args.startswith("--from")]
    assert copies
    for args in copies:
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert not ignored(src, rules), f"COPY {src}: excluded by .dockerignore"
    files = context_files()
    for unwanted in (".env", "tests/", "k8s/", ".git/", ".venv/"):
        assert not any(f == unwanted or f.startswith(unwanted) for f in files), f"{unwanted} in the build context"


def test_shipped_packs_are_copied_where_the_k8s_config_reads_them() -> None:
    copies = {args.split()[-1].rstrip("/"): args.split()[0] for word, args in final_stage() if word == "COPY"}
    assert copies.get("/opt/llm-filter/packs") == "filter/rules/packs/"
    packs = load_yaml(K8S / "config" / "config.yaml")["packs"]
    assert "/opt/llm-filter/packs/" in packs
    assert sorted((ROOT / "filter" / "rules" / "packs").glob("*.yaml")), (
        "filter/rules/packs/ has no packs: the image's /opt/llm-filter/packs would be empty"
    )


def test_build_context_builds_the_package_with_its_dependencies(tmp_path: Path) -> None:
    """`pip install .` in the image sees only the context and installs dependencies too: build the wheel and every
    dependency's wheel from a copy of the context, install them offline into a fresh venv (as the image's venv),
    and import every module of the package there."""
    ctx = tmp_path / "context"
    for rel in context_files():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, ctx / rel)
    dist = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(dist), str(ctx)], capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = dist.glob("llm_content_filter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "filter/cli.py" in names and "filter/server/app.py" in names
    shipped = {f"filter/rules/packs/{p.name}" for p in (ROOT / "filter" / "rules" / "packs").glob("*.yaml")}
    assert shipped <= set(names), "the shipped packs are package data"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(dist), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
                     if n.startswith("filter/") and n.endswith(".py") and n != "filter/__main__.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = f"import importlib; [importlib.import_module(m) for m in {modules!r}]"
    check = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
