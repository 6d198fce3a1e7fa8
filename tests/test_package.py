"""The grammar ships inside the wheel: an installed metricc parses without the source checkout."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_grammar_and_library(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.fail(f"wheel build failed:\n{build.stdout}\n{build.stderr}")
    (wheel,) = (tmp_path / "dist").glob("metricc-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    assert (target / "metricc" / "grammar" / "metric.lark").is_file()
    import metricc

    assert re.search(rf"^Version: {re.escape(metricc.__version__)}$", _metadata(target), re.M), "the wheel's version is metricc.__version__"
    script = (
        f"import sys; sys.path = [p for p in sys.path if p != {str(ROOT)!r}];"
        "import metricc, metricc.parse as p;"
        f"assert metricc.__file__.startswith({str(target)!r}), metricc.__file__;"
        f"assert p.grammar_path().is_relative_to({str(target)!r}), p.grammar_path();"
        "print(metricc.gradient('f1')['TP'])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "FN + FP" in result.stdout


def test_the_python_versions_claimed_are_those_ci_tests():
    """requires-python, the classifiers, README and the wheel smoke in CI name one range of versions."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    lowest = int(re.search(r'^requires-python = ">=3\.(\d+)"', pyproject, re.M).group(1))
    claimed = [f"3.{minor}" for minor in range(lowest, 14)]
    assert re.findall(r"Programming Language :: Python :: (3\.\d+)", pyproject) == claimed
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"a fresh Python {', '.join(claimed[:-1])} or {claimed[-1]} environment (the versions CI tests)" in readme
    assert ".ci/wheel-smoke" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _metadata(site: Path) -> str:
    (metadata,) = site.glob("metricc-*.dist-info/METADATA")
    return metadata.read_text(encoding="utf-8")


def test_the_runtime_imports_nothing_of_the_compiler():
    """metricc/runtime is the ground floor: its modules import torch, the standard library and each other, never the
    compiler around them (from .. or metricc.* outside metricc.runtime)."""
    import ast

    for path in sorted((ROOT / "metricc" / "runtime").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} line {node.lineno}: from {'.' * node.level}{node.module or ''} reaches the compiler"
                names = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] != "metricc" or name.startswith("metricc.runtime"), f"{path.name} line {node.lineno}: import {name}"


def test_one_version_source():
    """The version is written once, in metricc/runtime/version.py: pyproject.toml reads it from there."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and 'version = {attr = "metricc.runtime.version.__version__"}' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, re.M)
    import metricc
    from metricc.runtime import __version__ as runtime_version

    assert metricc.__version__ == runtime_version
