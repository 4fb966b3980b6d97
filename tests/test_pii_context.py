"""PII in ordinary developer material does not stop work: authorship addresses are logged, customer data blocks.

The material is what coding agents read: the installed CPython standard library's own file headers, `git log`
and `git blame -e` output, commit trailers, package metadata; against a CSV of customers and a list of addresses.
"""

from __future__ import annotations

import sysconfig
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from filter.model import Decision
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.conftest import make_envelope

STDLIB = Path(sysconfig.get_paths()["stdlib"])
GIT_LOG = """\
commit 3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39
Author: Maria Lopez <m.lopez@unizar.es>
Date:   Tue Mar 4 10:12:01 2025 +0100

    parser: keep comments attached to the following node

    Signed-off-by: Maria Lopez <m.lopez@unizar.es>
    Reviewed-by: Kenji Watanabe <kenji.watanabe@fastmail.jp>
    Co-authored-by: Priya Raman <priya.raman@proton.me>

commit 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b
Author: Ravi Menon <ravi.menon84@gmail.com>
Date:   Mon Mar 3 17:40:22 2025 +0530

    tests: cover the empty-file case
"""
GIT_BLAME = """\
3f1c2a9d (<m.lopez@unizar.es>       2025-03-04 10:12:01 +0100 41)     def visit(self, node):
^9a8b7c6 (<ravi.menon84@gmail.com>  2025-03-03 17:40:22 +0530 42)         return node
"""
PACKAGE_JSON = """\
{
  "name": "@northwind/route-planner",
  "version": "2.3.1",
  "author": "Dana Whitfield <dana.whitfield@northwind-logistics.com>",
  "maintainers": [
    {"name": "Ravi Menon",
     "email": "ravi.menon84@gmail.com"}
  ]
}
"""
PYPROJECT = """\
[project]
name = "route-planner"
authors = [
    {name = "Dana Whitfield", email = "dana.whitfield@northwind-logistics.com"},
]
"""
LICENCE = ("MIT License\n\nCopyright (c) 2020 Dana Whitfield <dana.whitfield@northwind-logistics.com>\n\n"
           "Permission is hereby granted, free of charge, to any person obtaining a copy")
CUSTOMERS_CSV = """\
id,name,email,plan,mrr
1,Dana Whitfield,dana.whitfield@northwind-logistics.com,enterprise,4200
2,Ravi Menon,ravi.menon84@gmail.com,pro,99
3,Maria Lopez,m.lopez@unizar.es,pro,99
4,Kenji Watanabe,kenji.watanabe@fastmail.jp,team,450
5,Priya Raman,priya.raman@proton.me,free,0
"""
SENT_BY = "Invoice 4411 was sent by billing to dana.whitfield@northwind-logistics.com on Monday."
ADDRESS_LIST = "dana.whitfield@northwind-logistics.com\nravi.menon84@gmail.com\nm.lopez@unizar.es\n"


@pytest.fixture(scope="module")
def check() -> Any:
    settings = load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"})
    runtimes = {on: Runtime(None, replace(settings, policy=replace(settings.policy, pii_context=on)))
                for on in (True, False)}
    counter = TokenCounter(load_encoding())

    def check(text: str, pii_context: bool = True) -> Decision:
        """`text` as a tool result the agent sends back to Claude (a file it read, a command's output)."""
        body = {"model": "claude-sonnet-4", "max_tokens": 100, "messages": [
            {"role": "user", "content": "Look at this."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}]}]}
        return evaluate(make_envelope(body, "/v1/messages"), runtimes[pii_context].current, counter).decision

    return check


def stdlib_headers() -> list[tuple[str, str]]:
    """Top-level stdlib modules whose first 150 lines hold an address (about one in six)."""
    out = []
    for path in sorted(STDLIB.glob("*.py")):
        head = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[:150])
        if "@" in head and "." in head.split("@", 1)[1][:60]:
            out.append((path.name, head))
    return out


def logged_emails(d: Decision) -> bool:
    return any(f.rule_id == "email-address" and f.action.value == "log" for f in d.findings)


def test_stdlib_file_headers_with_their_authors_address_are_allowed_and_logged(check: Any) -> None:
    headers = stdlib_headers()
    assert len(headers) >= 15, "the installed standard library has its authors' addresses in file headers"
    blocked = [name for name, head in headers if not check(head).allowed]
    assert blocked == []
    argparse = dict(headers)["argparse.py"]  # "# Author: Steven J. Bethard <steven.bethard@gmail.com>."
    d = check(argparse)
    assert d.allowed and logged_emails(d) and "email-address" in d.headers["x-llm-filter-findings"]


def test_without_pii_context_the_same_header_blocks(check: Any) -> None:
    argparse = dict(stdlib_headers())["argparse.py"]
    d = check(argparse, pii_context=False)
    assert (d.allowed, d.reason) == (False, "pii_detected")


@pytest.mark.parametrize("text", [GIT_LOG, GIT_BLAME, PACKAGE_JSON, PYPROJECT, LICENCE],
                         ids=["git-log", "git-blame", "package-json", "pyproject", "licence"])
def test_developer_material_is_allowed_with_the_addresses_logged(check: Any, text: str) -> None:
    d = check(text)
    assert d.allowed, d.message
    assert logged_emails(d)


@pytest.mark.parametrize("text", [CUSTOMERS_CSV, ADDRESS_LIST, f"{GIT_LOG}\n{CUSTOMERS_CSV}", SENT_BY],
                         ids=["customers-csv", "address-list", "git-log-then-customers", "sent-by"])
def test_customer_data_still_blocks(check: Any, text: str) -> None:
    d = check(text)
    assert (d.allowed, d.reason) == (False, "pii_detected")


def test_an_ssn_on_an_authorship_line_still_blocks(check: Any) -> None:
    d = check("Author: Dana Whitfield <dana.whitfield@northwind-logistics.com>, SSN 536-90-4412\n")
    assert (d.allowed, d.reason) == (False, "pii_detected")
    assert {f.rule_id for f in d.findings if f.action.value == "block"} >= {"us-ssn"}


# Look-alikes of e-mail addresses in ordinary developer material, and what each becomes.
NOT_ADDRESSES = {  # not personal data at all: no finding
    "git-ssh-remote": "git clone git@github.com:northwind/route-planner.git",
    "git-remote-v": "origin\tgit@gitlab.northwind.io:platform/route-planner.git (fetch)",
    "git-config-url": '[remote "origin"]\n\turl = git@bitbucket.org:northwind/route-planner.git',
    "pip-git-url": 'pip install "mypkg @ git+ssh://git@github.com/northwind/mypkg.git@v1.2.0"',
    "npm-scoped-versions": "npm install @types/node@18.19.3 @angular/core@17.0.0 lodash@4.17.21",
    "npm-prerelease-like-domain": "npm i vue@3.4.0-alpha.me next@14.1.0-canary.ai",
    "npm-ls-tree": "app@1.2.3 /home/dev/app\n├── react@18.2.0\n└── typescript@5.3.3",
    "yarn-lock": '"@babel/core@7.24.0":\n  resolved "https://registry.yarnpkg.com/@babel/core/-/core-7.24.0.tgz"',
    "decorators": "@Component({selector: 'app-root'})\nexport class AppComponent {\n  @Input() name = '';\n}",
    "python-decorators": "@dataclass(frozen=True)\n@app.route('/users/<id>')\ndef show(id): ...",
    "actions-pin": "      - uses: actions/setup-node@v4.0.2",
    "docker-digest": "FROM node@sha256:8f3e9c1d2a7b6e5f4c3d2a1b0e9f8d7c6b5a4e3f2d1c0b9a8e7f6d5c4b3a2e1f",
    "matrix-product": "scores = q@k.mT / math.sqrt(d)\nout = x@W.network",
    "service-account": '  "client_email": "etl@billing-prod-4821.iam.gserviceaccount.com",',
}
LOGGED = {  # a login on a host or an author's address: logged, not blocked
    "ssh": "$ ssh -i ~/.ssh/ci.pem -p 2222 ops@bastion.northwind-logistics.com 'systemctl restart api'",
    "scp": "scp dist/app.tar.gz deploy@web1.northwind.io:/srv/releases/",
    "rsync": "rsync -avz --delete build/ www-data@static.northwind.io:/var/www/html",
    "sftp": "sftp backup@files.northwind.io",
    "ssh-copy-id": "ssh-copy-id -i ~/.ssh/id_ed25519.pub admin@db1.northwind.io",
    "git-remote-user": "git clone deploy@git.northwind.io:platform/infra.git",
    "ssh-config": "Host prod\n    HostName 10.0.0.5\n    ProxyJump ops@bastion.northwind.io",
    "prompt": "deploy@web1.northwind.io:~/app$ ls -la",
    "prompt-brackets": "[ravi@dev.northwind.io ~]$ make test",
    "ssh-error": "deploy@web1.northwind.io: Permission denied (publickey).",
    "sphinx-moduleauthor": ".. moduleauthor:: Dana Whitfield <dana.whitfield@northwind-logistics.com>",
    "javadoc-author": " * @author Ravi Menon <ravi.menon84@gmail.com>",
    "spdx": "SPDX-FileCopyrightText: 2023 Dana Whitfield <dana.whitfield@northwind-logistics.com>\n"
            "SPDX-License-Identifier: MIT",
    "licence-contact": "/*\n * Copyright 2019-2024 Northwind Logistics GmbH\n"
                       " * Contact: Dana Whitfield <dana.whitfield@northwind-logistics.com>\n */",
    "format-patch": "From 3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 Mon Sep 17 00:00:00 2001\n"
                    "From: Maria Lopez <m.lopez@unizar.es>\nSubject: [PATCH] parser: keep comments",
    "mailmap": "Dana Whitfield <dana.whitfield@northwind-logistics.com> <dana@old-laptop.northwind.io>",
    "debian-control": "Maintainer: Dana Whitfield <dana.whitfield@northwind-logistics.com>\n"
                      "Uploaders: Ravi Menon <ravi.menon84@gmail.com>",
    "gemspec": '  s.authors = ["Dana Whitfield"]\n  s.email   = ["dana.whitfield@northwind-logistics.com"]',
}
STILL_BLOCKED = {  # personal data next to the same words
    "prose-after-ssh": "send the ssh key to dana.whitfield@northwind-logistics.com today",
    "credential-list": "dana.whitfield@northwind-logistics.com:Hunter2024\nravi.menon84@gmail.com:Winter99",
    "customer-row": "7,Dana Whitfield,dana.whitfield@northwind-logistics.com,enterprise",
}


@pytest.mark.parametrize("name", sorted(NOT_ADDRESSES))
def test_look_alikes_of_addresses_are_not_findings(check: Any, name: str) -> None:
    d = check(NOT_ADDRESSES[name])
    assert d.allowed and not [f for f in d.findings if f.category.value == "pii"], d.findings


@pytest.mark.parametrize("name", sorted(LOGGED))
def test_host_logins_and_authorship_addresses_are_logged_not_blocked(check: Any, name: str) -> None:
    d = check(LOGGED[name])
    assert d.allowed, d.message
    assert logged_emails(d) and all(f.action.value == "log" for f in d.findings if f.rule_id == "email-address")


@pytest.mark.parametrize("name", sorted(STILL_BLOCKED))
def test_addresses_near_the_same_words_still_block(check: Any, name: str) -> None:
    d = check(STILL_BLOCKED[name])
    assert (d.allowed, d.reason) == (False, "pii_detected")
