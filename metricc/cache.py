"""The disk cache of compilations: emitted sources by key (the metric, its options and a fingerprint of this
metricc), and the trust checks every read and write passes.

A cache directory is code the process will run: it is used only if it belongs to the current user and nobody else
can write to it; otherwise a private temporary directory of this process takes its place, with one warning.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import json
import os
import shutil
import stat
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Set, Tuple

import platformdirs


class UntrustedCacheWarning(UserWarning):
    """A cache directory or file that another user could have written is not used."""


def cache_dir() -> Path:
    """$METRICC_CACHE_DIR, else the user's own cache directory (`$XDG_CACHE_HOME/metricc`, `~/.cache/metricc`)."""
    configured = os.environ.get("METRICC_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(platformdirs.user_cache_dir("metricc", appauthor=False))


def current_uid() -> Optional[int]:
    """The user a trusted file must belong to; None where the platform has no owners (Windows)."""
    return os.getuid() if hasattr(os, "getuid") else None


def untrusted_reason(status: os.stat_result, uid: Optional[int], kind: str) -> Optional[str]:
    """Why a file or directory with this status must not be trusted, or None: wrong type, owner or permissions."""
    is_kind = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if stat.S_ISLNK(status.st_mode):
        return "it is a symbolic link"
    if not is_kind(status.st_mode):
        return f"it is not a {kind}"
    if uid is None:
        return None
    if status.st_uid != uid:
        return f"it belongs to uid {status.st_uid}, not to the current user (uid {uid})"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"group or others can write to it (mode {stat.S_IMODE(status.st_mode):o}; `chmod 700` it to use it)"
    return None


def trusted_directory(path: Path) -> Optional[str]:
    """Why the directory at path must not be trusted (missing, a link, another user's, writable by others), or None."""
    try:
        return untrusted_reason(os.lstat(path), current_uid(), "directory")
    except OSError as error:
        return f"it cannot be inspected ({error.strerror})"


_warned: Set[Tuple[str, str]] = set()


def warn_once(reason: str, path: Path) -> None:
    """One warning per distinct refusal and path in a process: a training loop compiling often stays readable."""
    if (reason, str(path)) in _warned:
        return
    _warned.add((reason, str(path)))
    warnings.warn(
        f"metricc does not use the cache at {path}: {reason}. Compiling in a private temporary directory instead; "
        "METRICC_CACHE_DIR names another cache directory.",
        UntrustedCacheWarning,
        stacklevel=2,
    )


def _private_directory(path: Path) -> bool:
    """Create path (mode 0700) where missing; True when it is safe to read, write and import from, else warn once."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        warn_once(f"it cannot be created ({error.strerror})", path)
        return False
    reason = trusted_directory(path)
    if reason:
        warn_once(reason, path)
    return reason is None


def cache_subdirectory(*parts: str) -> Optional[Path]:
    """cache_dir()/parts when it and every directory on the way from cache_dir() are trusted, else None."""
    directory = cache_dir()
    if not _private_directory(directory):
        return None
    for part in parts:
        directory = directory / part
        if not _private_directory(directory):
            return None
    return directory


@lru_cache(maxsize=1)
def fallback_directory() -> Path:
    """A fresh directory only this process writes to (mkdtemp makes it 0700), removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="metricc-"))
    atexit.register(_remove_if_made_by, os.getpid(), path)
    return path


def _remove_if_made_by(pid: int, path: Path) -> None:
    """Remove path at exit, but not from a forked child, whose parent may still import from it."""
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def read_trusted(path: Path) -> Optional[str]:
    """The text of a file that is the current user's and writable by nobody else; None if missing or refused.

    The checks look at the opened descriptor (without following a link), so the file cannot be swapped in between.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        reason = untrusted_reason(os.fstat(descriptor), current_uid(), "file")
        if reason:
            warn_once(reason, path)
            return None
        data = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """A hash of every file that decides what the compiler emits: a changed metricc never reuses old source."""
    digest = hashlib.sha256()
    for label, path in _fingerprinted_files(Path(__file__).resolve().parent):
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _fingerprinted_files(package: Path) -> List[Tuple[str, Path]]:
    """(name, path) of every module in the package and its subpackages, library.toml and the grammar, in order."""
    modules = sorted((path.relative_to(package).as_posix(), path) for path in package.rglob("*.py"))
    places = (package / "grammar" / "metric.lark", package.parent / "grammar" / "metric.lark")
    grammar = [("grammar/metric.lark", path) for path in places if path.is_file()][:1]
    return modules + [("library.toml", package / "library.toml")] + grammar


def source_key(expression: str, name: Optional[str], options: object) -> str:
    """The disk cache key of one compilation: the metric text, the name and the options, for this metricc."""
    text = json.dumps([package_fingerprint(), expression, name, repr(options)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def cached_source(key: str) -> Optional[Tuple[str, str, str]]:
    """(metric name, class name, source) compiled earlier with this key, or None (also for an untrusted cache, and
    for an entry that is not exactly what store_source writes: the caller then compiles and rewrites it)."""
    directory = cache_subdirectory("sources")
    text = read_trusted(directory / f"{key}.json") if directory else None
    return entry_fields(text) if text else None


def store_source(key: str, name: str, class_name: str, source: str) -> None:
    """Keep a compilation for the next process; an untrusted or unwritable cache is skipped."""
    directory = cache_subdirectory("sources")
    if directory is None:
        return
    try:
        write_atomically(directory / f"{key}.json", entry_text(name, class_name, source))
    except OSError:
        pass


def entry_text(name: str, class_name: str, source: str) -> str:
    """The JSON of one cache entry: the compilation and the hash of its source, which a source cut short fails."""
    return json.dumps({"name": name, "class": class_name, "source": source, "sha256": _digest(source)})


_ENTRY_KEYS = ("class", "name", "sha256", "source")


def entry_fields(text: str) -> Optional[Tuple[str, str, str]]:
    """(name, class name, source) of an entry with exactly entry_text's keys, every one a string, a source whose
    hash matches and that defines the class; None for anything else (bad JSON, null, a number, a list, ...)."""
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or sorted(entry) != list(_ENTRY_KEYS):
        return None
    if not all(isinstance(value, str) for value in entry.values()):
        return None
    name, class_name, source = entry["name"], entry["class"], entry["source"]
    try:
        whole = _digest(source) == entry["sha256"]
    except UnicodeEncodeError:  # a lone surrogate, which JSON can spell and no emitted source holds
        return None
    return (name, class_name, source) if name and whole and defines_class(source, class_name) else None


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@lru_cache(maxsize=64)
def defines_class(source: str, class_name: str) -> bool:
    """Whether source parses as Python and defines class_name at its top level; parsed once per process."""
    if not class_name.isidentifier():
        return False
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, ast.ClassDef) and node.name == class_name for node in tree.body)


def write_atomically(path: Path, text: str) -> None:
    """Write through a fresh 0600 file renamed into place, so readers never see half a file or another's file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def compiled_source(expression: str, name: Optional[str], options: dict, parameter_defaults: Optional[dict] = None) -> Tuple[str, str, str]:
    """(name, class name, source): from the disk cache of earlier compilations (no parsing, differentiation or
    SymPy import), or compiled; parameter_defaults become the emitted class's parameter defaults."""
    from .arguments import make_options

    checked = make_options(**options)
    # the key of a compilation without parameter defaults is the options alone, as before they existed
    given = (checked, tuple(sorted(parameter_defaults.items()))) if parameter_defaults else checked
    key = source_key(expression, name, given) if isinstance(expression, str) else None
    found = cached_source(key) if key else None
    if found is None:
        from .compiler import compile_metric
        from .emitter import class_name

        compilation = compile_metric(expression, name, **options, **(parameter_defaults or {}))
        found = (compilation.name, class_name(compilation.name), compilation.source)
        if key:
            store_source(key, *found)
    return found
