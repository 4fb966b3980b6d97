"""Runtime: the current Snapshot (settings + compiled rules), swapped atomically on reload.

Reloads compile off the request path; a bad change keeps the last good snapshot and says why.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filter.errors import ConfigError
from filter.rules import DatabaseCache, Fingerprinter, Ruleset, load_ruleset
from filter.scopes import PolicyFile, PolicyFileError, check_against, load_policy
from filter.settings import FINGERPRINT_KEY_ENV, Settings, load_settings

log = logging.getLogger("llm_content_filter")


@dataclass(frozen=True, slots=True)
class Snapshot:
    settings: Settings
    ruleset: Ruleset
    policy: PolicyFile | None = None  # the policy file's scopes (settings.policy_file); None: global policy only


def fingerprint_key(settings: Settings, required: bool = False, warn: bool = True) -> bytes:
    """The HMAC key: env (through Settings), then key file; otherwise random per process (fingerprints then match
    only within it). `warn`: say so in the log (a server should; a one-shot `scan` need not)."""
    if settings.fingerprint_key:
        return settings.fingerprint_key.encode()
    if settings.fingerprint_key_file:
        try:
            return Path(settings.fingerprint_key_file).read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"{settings.fingerprint_key_file}: cannot read fingerprint key: {e.strerror}") from None
    if required:
        raise ConfigError(f"no fingerprint key: set {FINGERPRINT_KEY_ENV} or fingerprint_key_file in the config")
    if warn:
        log.warning("no fingerprint key configured (%s or fingerprint_key_file): using a random per-process key",
                    FINGERPRINT_KEY_ENV)
    return secrets.token_bytes(32)


def load_known_fingerprints(path: str | None) -> frozenset[str]:
    """One fingerprint per line (as printed by `llm-content-filter known-secrets add`); '#' starts a comment."""
    if not path:
        return frozenset()
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read known secrets: {e.strerror}") from None
    return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


def rule_cache(settings: Settings) -> DatabaseCache | None:
    return DatabaseCache(settings.cache_dir) if settings.cache_dir else None


def build_snapshot(settings: Settings, key: bytes, cache: DatabaseCache | None = None) -> Snapshot:
    """`cache`: where compiled rule databases are kept (default: the settings' cache_dir)."""
    cache = cache if cache is not None else rule_cache(settings)
    ruleset = load_ruleset(settings.packs, Fingerprinter(key), load_known_fingerprints(settings.known_secrets),
                           cache)
    policy = load_policy(settings.policy_file) if settings.policy_file else None
    if policy is not None:
        store_tz = settings.store.timezone if settings.store is not None else None
        if problems := check_against(policy, {r.id for r in ruleset.rules}, store_tz):
            raise PolicyFileError(problems)
    return Snapshot(settings, ruleset, policy)


class Runtime:
    def __init__(self, config_file: str | None, settings: Settings | None = None,
                 on_reload: Callable[[str, str], None] | None = None, warn_random_key: bool = True) -> None:
        self.config_file = config_file
        settings = settings or load_settings(config_file)
        self._key = fingerprint_key(settings, warn=warn_random_key)
        self.current = build_snapshot(settings, self._key)
        self.last_reload = time.time()  # when the live rule set was built
        self._on_reload = on_reload or (lambda result, detail: None)
        self._lock = threading.Lock()
        self._stamps = self._stat(self.current.settings, self._key_files())
        self._stop = threading.Event()

    @property
    def key(self) -> bytes:
        """The fingerprint key (HMAC), also what keys the rewriter's placeholders. Never log it."""
        return self._key

    @staticmethod
    def _stat(settings: Settings, extra: tuple[str, ...] = ()) -> dict[str, tuple[float, int]]:
        out = {}
        for f in (*settings.watched_files, *extra):
            try:
                st = os.stat(f)
                out[f] = (st.st_mtime, st.st_size)
            except OSError:
                out[f] = (0.0, -1)
        return out

    def reload(self) -> bool:
        """Rebuild from disk; swap only if everything loads. Returns whether the new set is live.

        File stamps are taken before reading, so a file written while the set compiles is seen as
        changed on the next poll instead of being marked as loaded.
        """
        with self._lock:
            stamps = self._stat(self.current.settings, self._key_files())
            try:
                settings = load_settings(self.config_file)
                stamps = self._stat(settings, self._key_files())
                snapshot = build_snapshot(settings, self._key)
            except Exception as e:  # noqa: BLE001 - whatever a bad file does, the last good set stays live
                self._stamps = stamps
                detail = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
                log.error("reload failed, keeping the last good rule set %s:\n%s", self.current.ruleset.digest, detail)
                self._on_reload("error", detail)
                return False
            self.current = snapshot  # one reference swap: in-flight checks keep the snapshot they read
            self.last_reload = time.time()
            self._stamps = stamps
            log.info("reloaded: %d rules, digest %s", len(snapshot.ruleset.rules), snapshot.ruleset.digest)
            self._on_reload("ok", snapshot.ruleset.digest)
            return True

    def changed(self) -> bool:
        return self._stat(self.current.settings, self._key_files()) != self._stamps

    def _key_files(self) -> tuple[str, ...]:
        """The policy's provider key files (credential injection): a rotated key is read again like a changed file."""
        return tuple(self.current.policy.keys) if self.current.policy is not None else ()

    def watch(self) -> threading.Thread:
        """Poll watched files (mtime + size) and reload on change, in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(self.current.settings.reload_interval_seconds):
                try:
                    if self.changed():
                        self.reload()
                except Exception as e:  # noqa: BLE001 - the watcher must outlive any bad change; count it
                    log.exception("pack watcher: reload check failed")
                    try:
                        self._on_reload("error", f"{type(e).__name__}: {e}")
                    except Exception:  # noqa: BLE001
                        log.exception("pack watcher: reload callback failed")

        thread = threading.Thread(target=loop, name="pack-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
