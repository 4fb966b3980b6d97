"""Compiled Hyperscan databases kept on disk, so a start or reload with unchanged rules skips the compile.

Compiling the shipped packs takes ~1.6 s of the start-up; loading the serialized database takes under a
millisecond. A cache file is named by a key over everything the database depends on: the patterns in order,
the compile function's own code (flags, mode, ids), the Hyperscan version and the machine. Its body is checked
against a SHA-256 stored in its header before Hyperscan reads it; a missing, corrupt or mismatched file means a
compile, and the result is written atomically (temporary file, then rename) for the next start. A cache
directory that cannot be written (read-only file system) only costs the compile: warned once, never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import CodeType

import hyperscan

from filter.rules.pack import Rule

log = logging.getLogger("llm_content_filter")

_MAGIC = b"llm-content-filter hyperscan db 1\n"
_DIGEST_HEX = 64
_SUFFIX = ".hsdb"
_EXAMPLES_SUFFIX = ".examples-ok"
KEEP = 8  # newest cache files kept per directory: pack edits must not fill the disk
_warned: set[str] = set()  # cache directories already warned about (once per process each)
_warned_lock = threading.Lock()

Compile = Callable[[Sequence[Rule]], hyperscan.Database]


def default_cache_dir(env: Mapping[str, str]) -> str:
    """The per-user cache directory: $XDG_CACHE_HOME/llm-content-filter, else ~/.cache/llm-content-filter."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return str(Path(base) / "llm-content-filter")


def cache_key(rules: Sequence[Rule], compile_fn: Compile) -> str:
    """What the compiled database depends on. The compile function's bytecode and constants stand for its flags
    and mode: a change to how rules are compiled can never load a database built the old way."""
    h = hashlib.sha256()
    version = str(getattr(hyperscan, "__version__", "?"))
    for part in (version, platform.machine(), platform.python_implementation(), _code_text(compile_fn.__code__),
                 str(len(rules))):
        h.update(part.encode() + b"\x00")
    for rule in rules:
        h.update(rule.pattern.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()[:40]


def _code_text(code: CodeType) -> str:
    """Bytecode and constants of a function, nested code (comprehensions) included, without memory addresses."""
    consts = [_code_text(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return code.co_code.hex() + "|" + "|".join(consts) + "|" + ",".join(code.co_names)


class DatabaseCache:
    """One cache directory. Counts what it did (hits, misses, writes) so tests and logs can tell."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.example_hits = 0  # loads whose pack examples were not run again (examples_passed)
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        return self.directory / f"rules-{key}{_SUFFIX}"

    def compiled(self, rules: Sequence[Rule], compile_fn: Compile) -> hyperscan.Database:
        """The database of `rules`: from the cache when a valid entry exists, else compiled and stored."""
        key = cache_key(rules, compile_fn)
        path = self.path_for(key)
        db = self._load(path)
        if db is not None:
            with self._lock:
                self.hits += 1
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: kept by the pruning
            log.debug("rule database loaded from cache (%d rules, %s)", len(rules), path.name)
            return db
        with self._lock:
            self.misses += 1
        db = compile_fn(rules)
        if self._store(path, db):
            with self._lock:
                self.writes += 1
        return db

    def _load(self, path: Path) -> hyperscan.Database | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(f"cannot read {path}: {e.strerror or e}")
            return None
        head = len(_MAGIC) + _DIGEST_HEX + 1
        if len(data) <= head or not data.startswith(_MAGIC):
            log.warning("rule database cache %s is not a cache file; compiling and replacing it", path.name)
            return None
        digest, body = data[len(_MAGIC) : head - 1], data[head:]
        if hashlib.sha256(body).hexdigest().encode() != digest:
            log.warning("rule database cache %s is corrupt; compiling and replacing it", path.name)
            return None
        try:
            return hyperscan.loadb(body, hyperscan.HS_MODE_BLOCK)
        except Exception as e:  # noqa: BLE001 - any refusal (another platform, version) just means a compile
            log.warning("rule database cache %s cannot be loaded (%s); compiling and replacing it",
                        path.name, type(e).__name__)
            return None

    def _store(self, path: Path, db: hyperscan.Database) -> bool:
        """Write atomically: readers see the old file or the whole new one, never a part."""
        try:
            body = hyperscan.dumpb(db)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".rules-", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            self._warn(f"cannot write to {self.directory}: {e.strerror or e}")
            return False
        self._prune()
        return True

    def examples_passed(self, key: str) -> bool:
        """Whether every example of the rule set `key` (examples_key) passed at an earlier load."""
        path = self.directory / f"rules-{key}{_EXAMPLES_SUFFIX}"
        if not path.is_file():
            return False
        with self._lock:
            self.example_hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept by the pruning
        return True

    def remember_examples_passed(self, key: str) -> None:
        """Record that every example of the rule set `key` passed (an empty marker file)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"rules-{key}{_EXAMPLES_SUFFIX}").touch()
        except OSError as e:
            self._warn(f"cannot write to {self.directory}: {e.strerror or e}")
            return
        self._prune(_EXAMPLES_SUFFIX)

    def _prune(self, suffix: str = _SUFFIX) -> None:
        """Keep the KEEP most recently used files; another process may be pruning too."""
        entries = []
        for f in self.directory.glob(f"rules-*{suffix}"):
            with contextlib.suppress(OSError):
                entries.append((f.stat().st_mtime, f))
        for _, f in sorted(entries, reverse=True)[KEEP:]:
            with contextlib.suppress(OSError):
                f.unlink()

    def _warn(self, message: str) -> None:
        with _warned_lock:
            if str(self.directory) in _warned:
                return
            _warned.add(str(self.directory))
        log.warning("rule database cache off: %s (rules are compiled at every start)", message)


_SOURCE_DIGEST: list[str] = []  # the filter package's source, hashed once per process


def source_digest() -> str:
    """SHA-256 over the filter package's Python source: whatever code decides an example's outcome."""
    if not _SOURCE_DIGEST:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent.parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\x00" + f.read_bytes() + b"\x00")
        _SOURCE_DIGEST.append(h.hexdigest())
    return _SOURCE_DIGEST[0]


def examples_key(pack_digests: Sequence[str], rule_ids: Sequence[str], known_fingerprints: frozenset[str]) -> str:
    """What a rule set's example results depend on: the pack files (examples included), which of their rules were
    kept, the known secrets, the code, the Hyperscan version and the machine."""
    h = hashlib.sha256()
    version = str(getattr(hyperscan, "__version__", "?"))
    for part in ("examples 1", version, platform.machine(), platform.python_implementation(), source_digest(),
                 *pack_digests, "\x01", *rule_ids, "\x01", *sorted(known_fingerprints)):
        h.update(part.encode() + b"\x00")
    return h.hexdigest()[:40]


def compile_cached(rules: Sequence[Rule], compile_fn: Compile, cache: DatabaseCache | None) -> hyperscan.Database:
    """Through `cache` when there is one, else a plain compile."""
    return compile_fn(rules) if cache is None else cache.compiled(rules, compile_fn)
