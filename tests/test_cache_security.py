"""The compilation cache is code metricc imports: another user's or a shared directory must never be used."""

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import metricc
import metricc.compiler
from metricc import cache as disk_cache
from metricc.cache import UntrustedCacheWarning, cache_dir, source_key
from metricc.load import load_source
from metricc.arguments import make_options

OTHER_UID = 12345
PLANTED = "raise SystemExit('planted code ran')\n\n\nclass F1Loss:\n    pass\n"


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees its own first warning."""
    monkeypatch.setattr(disk_cache, "_warned", set())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of this test's own, as METRICC_CACHE_DIR names it."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("METRICC_CACHE_DIR", str(directory))
    return directory


def plant(directory: Path, expression: str) -> Path:
    """What an attacker writes: a well-formed cache entry for expression whose source runs their code when imported
    (only the trust checks keep it out: test_a_planted_entry_passes_the_entry_checks)."""
    (directory / "sources").mkdir(parents=True, exist_ok=True)
    entry = entry_path(directory, expression)
    entry.write_text(disk_cache.entry_text("f1", "F1Loss", PLANTED), encoding="utf-8")
    return entry


def entry_path(directory: Path, expression: str) -> Path:
    return directory / "sources" / f"{source_key(expression, None, make_options())}.json"


def refusals(caught) -> list:
    return [warning for warning in caught if issubclass(warning.category, UntrustedCacheWarning)]


def backward_once(loss) -> torch.Tensor:
    preds = torch.rand(16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss(preds, (torch.arange(16) % 3 == 0).double()).backward()
    return preds.grad


def test_untrusted_reason_is_a_pure_check_of_owner_type_and_mode():
    directory = os.stat_result((stat.S_IFDIR | 0o700, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
    assert disk_cache.untrusted_reason(directory, 1000, "directory") is None
    assert disk_cache.untrusted_reason(directory, None, "directory") is None
    assert "uid 1000" in disk_cache.untrusted_reason(directory, 1001, "directory")
    assert "not a file" in disk_cache.untrusted_reason(directory, 1000, "file")
    for mode in (0o720, 0o702, 0o777):
        shared = os.stat_result((stat.S_IFDIR | mode, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
        assert "group or others can write" in disk_cache.untrusted_reason(shared, 1000, "directory")
    link = os.stat_result((stat.S_IFLNK | 0o777, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
    assert "symbolic link" in disk_cache.untrusted_reason(link, 1000, "directory")


def test_an_entry_in_another_users_directory_is_never_executed(cache, monkeypatch):
    plant(cache, "f1")
    monkeypatch.setattr(disk_cache, "current_uid", lambda: OTHER_UID)
    with pytest.warns(UntrustedCacheWarning, match=str(cache)):
        loss = metricc.loss("f1")
    assert backward_once(loss).abs().sum() > 0
    assert Path(sys.modules[type(loss).__module__].__file__).parent != cache


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown to another user needs root")
def test_an_entry_chowned_to_another_user_is_never_executed(cache):
    entry = plant(cache, "f1")
    for path in (cache, cache / "sources", entry):
        os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.warns(UntrustedCacheWarning, match=f"uid {OTHER_UID}"):
        loss = metricc.loss("f1")
    assert backward_once(loss).abs().sum() > 0


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no file owners on this platform")
def test_another_users_entry_in_my_directory_is_not_read(cache):
    entry = plant(cache, "f1")
    for path in (cache, cache / "sources"):
        path.chmod(0o700)
    if os.getuid() == 0:
        os.chown(entry, OTHER_UID, OTHER_UID)
    else:
        entry.chmod(0o666)
    with pytest.warns(UntrustedCacheWarning, match=str(entry)):
        loss = metricc.loss("f1")
    assert backward_once(loss).abs().sum() > 0


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no permission bits on this platform")
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777], ids=lambda mode: f"{mode:o}")
def test_a_group_or_world_writable_cache_is_refused_with_one_warning(cache, mode):
    plant(cache, "f1")
    cache.chmod(mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = metricc.loss("f1")
        metricc.loss("mcc")
    (warning,) = refusals(caught)
    assert str(cache) in str(warning.message) and "chmod 700" in str(warning.message)
    assert backward_once(first).abs().sum() > 0
    assert not list(cache.glob("*.py")), "nothing may be written to a refused cache"


def test_a_symbolic_link_as_cache_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    plant(target, "f1")
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    monkeypatch.setenv("METRICC_CACHE_DIR", str(tmp_path / "link"))
    with pytest.warns(UntrustedCacheWarning, match="symbolic link"):
        loss = metricc.loss("f1")
    assert backward_once(loss).abs().sum() > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CACHE_HOME is the Linux convention")
def test_the_default_cache_honours_xdg_and_is_private(tmp_path, monkeypatch):
    monkeypatch.delenv("METRICC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "metricc"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedCacheWarning)
        load_source(f"VALUE = {str(tmp_path)!r}\n")
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    (module,) = cache_dir().glob("metricc_generated_*.py")
    assert stat.S_IMODE(module.stat().st_mode) & 0o077 == 0


@pytest.mark.skipif(sys.platform == "win32", reason="the cache follows LOCALAPPDATA there, not HOME")
def test_the_default_cache_is_not_in_the_shared_temporary_directory(monkeypatch):
    """The default follows the user's home, whatever the machine's temp dir (a CI runner's HOME may lie under /tmp)."""
    monkeypatch.delenv("METRICC_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home = Path("/nonexistent-home-of-alice")
    monkeypatch.setenv("HOME", str(home))
    assert cache_dir().is_relative_to(home)
    assert not cache_dir().is_relative_to(Path(disk_cache.tempfile.gettempdir()))


def test_a_second_compilation_is_served_from_the_cache(cache, monkeypatch):
    expression = "(TP + 0.25) / (TP + FP + FN + 0.5)"
    first = backward_once(metricc.loss(expression))

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again although the cache holds this metric")

    monkeypatch.setattr(metricc.compiler, "compile_metric", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedCacheWarning)
        second = backward_once(metricc.loss(expression))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_a_refused_cache_compiles_in_a_private_directory(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(disk_cache, "current_uid", lambda: OTHER_UID)
    with pytest.warns(UntrustedCacheWarning):
        module = load_source(f"VALUE = {str(tmp_path)!r}\n")
    folder = Path(module.__file__).parent
    assert module.VALUE == str(tmp_path) and folder != cache and folder.name.startswith("metricc-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no permission bits on this platform")
def test_the_private_directory_is_removed_when_the_process_exits(cache):
    cache.mkdir()
    cache.chmod(0o777)
    script = "import metricc.load as l; print(l.load_source('VALUE = 3\\n').__file__)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "UntrustedCacheWarning" in result.stderr and str(cache) in result.stderr
    module = Path(result.stdout.strip())
    assert module.name.startswith("metricc_generated_") and not module.parent.exists()


def test_modules_run_the_checked_source_and_write_no_bytecode(tmp_path, monkeypatch):
    """The text metricc emitted and checked is what runs (not whatever the file holds by import time), and no
    __pycache__ appears in the cache, whose bytecode nothing would check."""
    import metricc
    from metricc.load import _import_verified, load_source

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("METRICC_CACHE_DIR", str(cache))
    load_source(metricc.emit("f1", name="bytecode_check"))
    assert not list(cache.rglob("__pycache__")) and not list(cache.rglob("*.pyc"))
    swapped = cache / "swapped.py"
    swapped.write_text("VALUE = 'from the file'\n")
    assert _import_verified(swapped, "metricc_test_swapped", "VALUE = 'checked'\n").VALUE == "checked"


def test_a_planted_entry_passes_the_entry_checks():
    """The planted entry is refused for its owner and mode alone, so the trust tests above test the trust checks."""
    assert disk_cache.entry_fields(disk_cache.entry_text("f1", "F1Loss", PLANTED)) == ("f1", "F1Loss", PLANTED)


def _resealed(entry: dict, source: str) -> dict:
    """entry with another source and that source's hash: only the parse check can tell it is no loss module."""
    return {**entry, "source": source, "sha256": disk_cache._digest(source)}


def _without(entry: dict, key: str) -> dict:
    return {name: value for name, value in entry.items() if name != key}


def _up_to_forward(source: str) -> str:
    return source[: source.index("    def forward")]


#: Entries that are well-formed JSON (or nearly) but not what store_source writes, each from the valid entry.
MALFORMED = {
    "source null": lambda e: json.dumps({**e, "source": None}),
    "source a number": lambda e: json.dumps({**e, "source": 3}),
    "source a list": lambda e: json.dumps({**e, "source": e["source"].splitlines()}),
    "source cut short": lambda e: json.dumps({**e, "source": e["source"][: len(e["source"]) // 2]}),
    "source cut at a line": lambda e: json.dumps({**e, "source": _up_to_forward(e["source"])}),
    "source cut, resealed": lambda e: json.dumps(_resealed(e, e["source"][: len(e["source"]) // 2])),
    "source not Python, resealed": lambda e: json.dumps(_resealed(e, e["source"] + "\ndef (:\n")),
    "source with a NUL, resealed": lambda e: json.dumps(_resealed(e, e["source"] + "\0")),
    "class renamed in the source, resealed": lambda e: json.dumps(_resealed(e, e["source"].replace("class F1Loss(", "class Other("))),
    "class missing": lambda e: json.dumps(_without(e, "class")),
    "class null": lambda e: json.dumps({**e, "class": None}),
    "class not an identifier": lambda e: json.dumps({**e, "class": "F1Loss()"}),
    "class another name": lambda e: json.dumps({**e, "class": "MccLoss"}),
    "name null": lambda e: json.dumps({**e, "name": None}),
    "name empty": lambda e: json.dumps({**e, "name": ""}),
    "hash missing": lambda e: json.dumps(_without(e, "sha256")),
    "hash a number": lambda e: json.dumps({**e, "sha256": 0}),
    "an extra key": lambda e: json.dumps({**e, "extra": "x"}),
    "an object without keys": lambda e: "{}",
    "a list instead of an object": lambda e: json.dumps(list(e.values())),
    "a string": lambda e: json.dumps(e["source"]),
    "null": lambda e: "null",
    "a number": lambda e: "7",
    "not JSON": lambda e: "{'name': 'f1'",
    "empty": lambda e: "",
    "nested too deep": lambda e: "[" * 100_000 + "]" * 100_000,
    "a lone surrogate": lambda e: json.dumps({**e, "source": "\ud800"}),
}


@pytest.fixture(scope="module")
def valid_f1_entry(tmp_path_factory) -> dict:
    """The entry store_source writes for f1, made once in a cache of its own."""
    directory = tmp_path_factory.mktemp("valid") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METRICC_CACHE_DIR", str(directory))
        metricc.loss("f1")
    return json.loads(entry_path(directory, "f1").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text_of", [*MALFORMED.values(), lambda e: b"\xff\xfe{"], ids=[*MALFORMED, "not UTF-8"])
def test_a_malformed_entry_is_a_miss_that_is_compiled_and_rewritten(cache, valid_f1_entry, text_of, monkeypatch):
    text = text_of(valid_f1_entry)
    entry = entry_path(cache, "f1")
    entry.parent.mkdir(parents=True)
    entry.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert disk_cache.cached_source(entry.stem) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrustedCacheWarning)
        assert backward_once(metricc.loss("f1")).abs().sum() > 0
    assert json.loads(entry.read_text(encoding="utf-8")) == valid_f1_entry
    monkeypatch.setattr(metricc.compiler, "compile_metric", lambda *args, **kwargs: pytest.fail("the rewritten entry missed"))
    assert backward_once(metricc.loss("f1")).abs().sum() > 0
