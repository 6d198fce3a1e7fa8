"""Stage 5: emitted source -> an importable Python module, via a real file so TorchScript can read its source."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def cache_dir() -> Path:
    """$METRICC_CACHE_DIR, else a per-user folder in the temporary directory."""
    configured = os.environ.get("METRICC_CACHE_DIR")
    if configured:
        return Path(configured)
    user = os.environ.get("USER") or str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"metricc-{user}"


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
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(source)
        os.replace(temporary, path)
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
