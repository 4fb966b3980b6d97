"""Tool output as agents send it back: a multi-line secret cut by line numbers, diff markers, grep prefixes,
terminal codes or notebook JSON is still one finding, located in the text as sent."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable

import pytest

from filter.formats import toolout
from filter.model import Decision, Finding, TextSegment
from filter.pipeline import evaluate
from filter.runtime import Runtime
from filter.settings import load_settings
from filter.tokens import TokenCounter, load_encoding
from tests.quality.keymaterial import encrypted_pkcs8_pem, pkcs8_pem, rsa_encrypted_legacy_pem, rsa_private_pem
from tests.support.envelopes import make_envelope

RNG = random.Random(23)
KEYS = {
    "rsa": (rsa_private_pem(RNG), "private-key-rsa"),
    "rsa-encrypted": (rsa_encrypted_legacy_pem(RNG), "private-key-rsa"),
    "pkcs8-encrypted": (encrypted_pkcs8_pem(RNG), "private-key-pkcs8-encrypted"),
}
SERVICE_ACCOUNT = json.dumps({
    "type": "service_account", "project_id": "billing-prod-4821",
    "private_key_id": "e4e26ad3745193125949f7d5b86618a0b4f480e7", "private_key": pkcs8_pem(RNG) + "\n",
    "client_email": "etl@billing-prod-4821.iam.gserviceaccount.com"}, indent=2)


def file_around(secret: str) -> str:
    return "# deploy notes\nhost = build-01\n" + secret + "\nretries = 3\n"


def numbered(text: str, arrow: bool = True) -> str:
    """A file-read tool (`     1→`) or `cat -n` (`     1<TAB>`)."""
    return "\n".join(f"{n:6d}{'→' if arrow else chr(9)}{line}" for n, line in enumerate(text.split("\n"), 1))


def nl(text: str) -> str:
    """`nl -ba`: right-aligned numbers and a tab."""
    return "\n".join(f"{n:6d}\t{line}" for n, line in enumerate(text.split("\n"), 1))


def grep_context(text: str, path: str = "deploy/keys/signing.pem") -> str:
    """`grep -rn -A40 BEGIN deploy/`: the match line `path:N:`, context lines `path-N-`."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        sep = ":" if "BEGIN" in line else "-"
        out.append(f"{path}{sep}{n}{sep}{line}")
    return "\n".join(out)


def grep_one_file(text: str) -> str:
    """`grep -n -A40 BEGIN key.pem`: `N:` on the match, `N-` on context lines."""
    return "\n".join(f"{n}{':' if 'BEGIN' in line else '-'}{line}" for n, line in enumerate(text.split("\n"), 1))


def added_diff(text: str) -> str:
    lines = text.split("\n")
    return ("diff --git a/deploy/key.pem b/deploy/key.pem\nnew file mode 100644\nindex 0000000..3f1c2a9\n"
            f"--- /dev/null\n+++ b/deploy/key.pem\n@@ -0,0 +1,{len(lines)} @@\n" + "\n".join("+" + ln for ln in lines)
            + "\n")


def removed_diff(text: str) -> str:
    """The key being deleted (the old side), with context lines around."""
    lines = text.split("\n")
    return (f"@@ -1,{len(lines) + 2} +1,2 @@\n # deploy notes\n" + "\n".join("-" + ln for ln in lines)
            + "\n host = build-01\n")


def git_show(text: str) -> str:
    return ("commit 3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39\nAuthor: CI <ci@northwind.invalid>\n"
            "Date:   Tue Mar 4 10:12:01 2025 +0100\n\n    add signing key\n\n" + added_diff(text))


def ansi_transcript(text: str) -> str:
    """`script` output: a coloured prompt, CRLF line ends, a colour reset in the middle of a line."""
    lines = text.split("\n")
    lines[3] = lines[3][:10] + "\x1b[0m" + lines[3][10:]
    body = "\r\n".join(lines)
    return f"\x1b[1;32mdev@box\x1b[0m:\x1b[34m~/app\x1b[0m$ ./scripts/print-config\r\n{body}\r\n\x1b]0;dev@box\x07$ "


def progress_lines(text: str) -> str:
    """A transcript whose lines end in a lone `\\r` (progress output captured raw)."""
    return "Downloading... 100%\r" + text.replace("\n", "\r") + "\rdone"


def notebook(text: str) -> str:
    """A notebook file printed as JSON: the key is a cell's source lines."""
    lines = text.split("\n")
    cell = {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [],
            "source": [ln + "\n" for ln in lines[:-1]] + [lines[-1]]}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


def numbered_notebook(text: str) -> str:
    return numbered(notebook(text))


def numbered_diff(text: str) -> str:
    """A .patch file read with line numbers."""
    return numbered(added_diff(text))


FORMATS: dict[str, Callable[[str], str]] = {
    "read-tool-arrows": numbered,
    "cat-n": lambda t: numbered(t, arrow=False),
    "nl": nl,
    "grep-context": grep_context,
    "grep-one-file": grep_one_file,
    "diff-added": added_diff,
    "diff-removed": removed_diff,
    "git-show": git_show,
    "ansi-transcript": ansi_transcript,
    "lone-cr": progress_lines,
    "notebook-json": notebook,
    "numbered-notebook": numbered_notebook,
    "numbered-patch": numbered_diff,
}


@pytest.fixture(scope="module")
def check() -> Callable[..., Decision]:
    runtime = Runtime(None, load_settings(None, env={"LLM_FILTER_FINGERPRINT_KEY": "k"}))
    counter = TokenCounter(load_encoding())

    def check(text: str, as_plain_text: bool = False) -> Decision:
        """`text` as a tool result sent back to Claude, or (`as_plain_text`) as a text/plain body."""
        if as_plain_text:
            env = make_envelope(text, "/v1/anything", {"content-type": "text/plain"})
        else:
            env = make_envelope({"model": "claude-sonnet-4", "max_tokens": 100, "messages": [
                {"role": "user", "content": "Check the key handling."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}]}]},
                "/v1/messages")
        return evaluate(env, runtime.current, counter).decision

    return check


TOOL_RESULT = "messages[2].content[0].content"


def only_finding(d: Decision, rule: str) -> Finding:
    secrets = [f for f in d.findings if f.category.value in ("secret", "file")]
    assert [f.rule_id for f in secrets] == [rule], [(f.rule_id, f.location, f.start, f.end) for f in d.findings]
    return secrets[0]


@pytest.mark.parametrize("key", sorted(KEYS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_pem_key_cut_by_tool_output_prefixes_is_one_finding_over_its_lines(
        check: Callable[..., Decision], fmt: str, key: str) -> None:
    pem, rule = KEYS[key]
    text = FORMATS[fmt](file_around(pem))
    d = check(text)
    assert not d.allowed and d.reason == "secret_detected"
    f = only_finding(d, rule)
    assert f.location == TOOL_RESULT
    covered = text[f.start:f.end]
    assert covered.startswith("-----BEGIN ") and pem.split("\n")[-2][-16:] in covered
    last = pem.split("\n")[-1]  # the END line (some formats keep their prefix or suffix around it)
    assert covered.endswith(last) or text[f.end:].lstrip("\\n\",\r").startswith(last) or last in covered


@pytest.mark.parametrize("fmt", ["read-tool-arrows", "cat-n", "grep-context", "diff-added", "ansi-transcript"])
def test_a_service_account_key_file_in_tool_output_is_one_finding(check: Callable[..., Decision], fmt: str) -> None:
    text = FORMATS[fmt](SERVICE_ACCOUNT)
    d = check(text)
    assert not d.allowed and d.reason == "secret_detected"
    (f,) = [f for f in d.findings if f.rule_id == "gcp-service-account-json"]
    assert f.location == TOOL_RESULT and text[f.start:f.end].startswith('"private_key"')
    assert not [f for f in d.findings if f.category.value == "pii"]  # the service account's address is no person's


KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: prod\n"
    "users:\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n"
    "    client-key-data: " + base64.b64encode(KEYS["rsa"][0].encode()).decode() + "\n"
)


@pytest.mark.parametrize("fmt", ["read-tool-arrows", "cat-n", "grep-context", "diff-added", "ansi-transcript"])
def test_a_kubeconfig_in_tool_output_is_one_finding_on_its_key_line(check: Callable[..., Decision], fmt: str) -> None:
    text = FORMATS[fmt](KUBECONFIG)
    d = check(text)
    assert not d.allowed
    (f,) = [f for f in d.findings if f.rule_id == "kubeconfig-client-key"]
    assert f.location == TOOL_RESULT and text[f.start:f.end].startswith("client-key-data:")


def test_a_numbered_file_in_a_text_plain_body_is_scanned_the_same_way(check: Callable[..., Decision]) -> None:
    pem, rule = KEYS["rsa-encrypted"]
    text = numbered(file_around(pem))
    d = check(text, as_plain_text=True)
    f = only_finding(d, rule)
    assert f.location == "body" and text[f.start:].startswith("-----BEGIN RSA PRIVATE KEY-----")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_ordinary_tool_output_in_each_format_is_allowed(check: Callable[..., Decision], fmt: str) -> None:
    source = ("import os\n\n\ndef main() -> int:\n    path = os.environ.get('CONFIG', 'config.toml')\n"
              "    print(f'reading {path}')\n    return 0\n\n\nif __name__ == '__main__':\n    raise SystemExit(main())")
    d = check(FORMATS[fmt](source))
    assert d.allowed, [(f.rule_id, f.start, f.end) for f in d.findings]


def derived_text(text: str, triggers: list[str]) -> str:
    seg = toolout.tool_output(TextSegment("t", text), triggers)
    assert seg is not None and seg.origin is not None
    return seg.text


def test_line_numbers_are_removed_only_on_consecutive_runs() -> None:
    log = "10:30 started\n12:01 done\n"  # times, not line numbers: left alone (nothing changes, no copy)
    assert toolout.tool_output(TextSegment("t", log), [toolout.NUMBERED]) is None
    assert derived_text("7:alpha\n8-beta\n9-gamma\n", [toolout.NUMBERED]) == "alpha\nbeta\ngamma\n"


def test_diff_yields_the_new_and_the_old_side() -> None:
    diff = "@@ -1,2 +1,2 @@\n keep\n-old\n+new\n"
    assert derived_text(diff, [toolout.DIFF]) == "@@ -1,2 +1,2 @@\nkeep\nnew\n\n@@ -1,2 +1,2 @@\nkeep\nold\n"


def test_every_derived_character_maps_to_the_same_character_as_sent() -> None:
    text = ansi_transcript(numbered(file_around(KEYS["rsa"][0])))
    seg = toolout.tool_output(TextSegment("t", text), [toolout.ANSI, toolout.NUMBERED])
    assert seg is not None and seg.origin is not None
    (piece,) = seg.origin.pieces
    for i, ch in enumerate(seg.text):
        assert text[piece.original(i)] == ch


def test_text_without_any_trigger_gets_no_copy() -> None:
    assert toolout.tool_output(TextSegment("t", "plain words\nand more\n"), []) is None


def test_word_diff_words_go_to_their_side() -> None:
    diff = "@@ -1,2 +1,2 @@\n keep\nmode = [-slow-]{+fast+} now\n"
    assert derived_text(diff, [toolout.DIFF]) == (
        "@@ -1,2 +1,2 @@\nkeep\nmode = fast now\n\n@@ -1,2 +1,2 @@\nkeep\nmode = slow now\n")
    seg = toolout.tool_output(TextSegment("t", diff), [toolout.DIFF])
    assert seg is not None and seg.origin is not None
    for piece in seg.origin.pieces:
        for i in range(piece.at, piece.at + piece.length):
            assert diff[piece.original(i - piece.at)] == seg.text[i]


TOKEN = "Tq4Zn8Wx2Lm6Rb9Vk3Hc7Pd5Jf"  # random, made here
DIFF_LINES: dict[str, str] = {
    "added": "+  deploy_token: {v}\n",
    "removed": "-  deploy_token: {v}\n+  deploy_token: ${{DEPLOY_TOKEN}}\n",
    "context": "   deploy_token: {v}\n-  debug: true\n+  debug: false\n",
    "added camel key name": "+  mapboxKey: {v}\n",
    "added block scalar": "+  deploy_token: |\n+    {v}\n",
    "word diff added": "   deploy_token: [-${{DEPLOY_TOKEN}}-]{{+{v}+}}\n",
    "word diff removed": "   deploy_token: [-{v}-]{{+${{DEPLOY_TOKEN}}+}}\n",
    "coloured": "\x1b[32m+  deploy_token: {v}\x1b[m\n",
}


@pytest.mark.parametrize("marker", sorted(DIFF_LINES))
def test_a_token_on_any_line_of_a_diff_is_found_where_it_was_sent(check: Callable[..., Decision], marker: str) -> None:
    text = ("diff --git a/deploy/values.yaml b/deploy/values.yaml\nindex 3f2a1c4..9be07d2 100644\n"
            "--- a/deploy/values.yaml\n+++ b/deploy/values.yaml\n@@ -4,3 +4,3 @@\n secrets:\n"
            + DIFF_LINES[marker].format(v=TOKEN) + " resources: {}\n")
    d = check(text)
    at = text.index(TOKEN)
    hits = [f for f in d.findings if f.category.value == "secret" and f.location.startswith(TOOL_RESULT)
            and f.start <= at < f.end]
    assert hits, [(f.rule_id, f.location, f.start, f.end) for f in d.findings]
