"""Stage 5: emitted source -> an importable Python module, via a real file so TorchScript can read its source."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Optional, Tuple


def cache_dir() -> Path:
    """$METRICC_CACHE_DIR, else a per-user folder in the temporary directory."""
    configured = os.environ.get("METRICC_CACHE_DIR")
    if configured:
        return Path(configured)
    user = os.environ.get("USER") or str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"metricc-{user}"


@lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """A hash of every file that decides what the compiler emits: a changed metricc never reuses old source."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    files = sorted(package.rglob("*.py"), key=lambda path: path.relative_to(package).as_posix()) + [package / "library.toml"]
    grammar = [package / "grammar" / "metric.lark", package.parent / "grammar" / "metric.lark"]
    files += [path for path in grammar if path.is_file()][:1]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_key(expression: str, name: Optional[str], options: object) -> str:
    """The disk cache key of one compilation: the metric text, the name and the options, for this metricc."""
    text = json.dumps([package_fingerprint(), expression, name, repr(options)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def cached_source(key: str) -> Optional[Tuple[str, str, str]]:
    """(metric name, class name, source) compiled earlier with this key, or None."""
    try:
        entry = json.loads((cache_dir() / "sources" / f"{key}.json").read_text(encoding="utf-8"))
        return entry["name"], entry["class"], entry["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_source(key: str, name: str, class_name: str, source: str) -> None:
    """Keep a compilation for the next process; a cache that cannot be written is skipped silently."""
    directory = cache_dir() / "sources"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / f"{key}.json", json.dumps({"name": name, "class": class_name, "source": source}))
    except OSError:
        pass


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def load_source(source: str) -> ModuleType:
    """Import emitted source under a name derived from its hash; the same source is imported once per process."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:20]
    module_name = f"metricc_generated_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module_name}.py"
    if not path.is_file() or path.read_text(encoding="utf-8") != source:
        _write_atomically(path, source)
    return load_file(path, module_name)


def load_file(path: Path, module_name: str = "") -> ModuleType:
    """Import a generated module file (for example one in generated/) by path."""
    path = Path(path)
    module_name = module_name or f"metricc_file_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
