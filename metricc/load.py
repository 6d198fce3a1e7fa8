"""Stage 5: emitted source -> an importable Python module, via a real file so TorchScript can read its source:
in the trusted cache directory (cache.py) or this process's private one, and imported from the checked text."""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

from .cache import UntrustedCacheWarning, cache_subdirectory, fallback_directory, read_trusted, warn_once, write_atomically

__all__ = ["UntrustedCacheWarning", "load_file", "load_source"]  # the warning's home in metricc 0.2, which code may name


def _module_directories() -> Iterator[Path]:
    """The cache directory when it is trusted, then the private one; lazily, so a trusted cache creates no other."""
    directory = cache_subdirectory()
    if directory is not None:
        yield directory
    yield fallback_directory()


def _module_file(module_name: str, source: str) -> Path:
    """A file holding exactly source, in the cache if it is trusted and writable, else in the private directory."""
    for directory in _module_directories():
        path = directory / f"{module_name}.py"
        try:
            if read_trusted(path) != source:
                write_atomically(path, source)
            return path
        except OSError as error:
            warn_once(f"it cannot be written ({error.strerror})", directory)
    raise OSError(f"cannot write the emitted module {module_name} to {fallback_directory()}")


def load_source(source: str) -> ModuleType:
    """Import emitted source under a name derived from its hash; the same source is imported once per process."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:20]
    module_name = f"metricc_generated_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    return _import_verified(_module_file(module_name, source), module_name, source)


def _import_verified(path: Path, module_name: str, source: str) -> ModuleType:
    """Run the module from the source metricc emitted and checked, not from whatever is at `path` by then, and
    never from bytecode (a __pycache__ in the cache is not checked): the text is compiled here, registered in
    linecache under the file's name for TorchScript's source lookup, and no .pyc is read or written."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))
    code = compile(source, str(path), "exec", dont_inherit=True)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # the emitter's own output, verified above; never user text
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_file(path: Path, module_name: str = "") -> ModuleType:
    """Import a generated module file (for example one in generated/) by path; the caller vouches for the file."""
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
