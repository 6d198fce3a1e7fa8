"""The two forms of an emitted file (over metricc's runtime, or standalone with it inlined), the runtime's
version check, the one table of options, and what `import metricc` costs."""

import ast
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import metricc
from metricc.cli import build_parser
from metricc.compiler import compile_metric
from metricc.emitter import class_name
from metricc.load import load_source
from metricc.arguments import LossOptions, make_options
from metricc.runtime import CONTRACT, OLDEST_SERVED_VERSION, RUNTIME_VERSION, require_runtime
from metricc.runtime.options import OPTIONS, OPTION_NAMES

ROOT = Path(__file__).resolve().parent.parent
# a process in which `import metricc` fails, as where metricc is not installed
WITHOUT_METRICC = "import sys; sys.modules['metricc'] = None\n"


def imported_modules(source):
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


def run_python(script, cwd):
    environment = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(64, generator=g, dtype=torch.float64), (torch.rand(64, generator=g) > 0.6).double()


def test_standalone_file_imports_only_torch_and_agrees_with_the_default_form():
    source = metricc.emit("fbeta(beta=2) + mcc/4", name="mixed", standalone=True)
    assert imported_modules(source) <= {"torch", "typing", "math", "difflib", "inspect"}, "torch and a few standard modules"
    standalone = getattr(load_source(source), "MixedLoss")()
    default = metricc.loss("fbeta(beta=2) + mcc/4", name="mixed")
    preds, target = batch()
    for module in (standalone, default):
        leaf = preds.clone().requires_grad_(True)
        module(leaf, target).backward()
        module.gradient = leaf.grad
    torch.testing.assert_close(standalone(preds, target), default(preds, target), rtol=0, atol=0)
    torch.testing.assert_close(standalone.gradient, default.gradient, rtol=0, atol=0)


def test_a_standalone_matrix_metric_carries_its_form_only_and_agrees_with_the_default_form():
    """Each form's standalone file inlines what its base class needs: no soft counts in a matrix metric's, no
    matrix in a four-count metric's; the matrix metric's loss and gradient are the default form's, scripted too."""
    source = metricc.emit("qwk", task="multiclass", from_logits=True, standalone=True)
    counts = metricc.emit("f1", standalone=True)
    assert "def soft_counts(" not in source and "class CountLossBase(" not in source
    assert "def soft_matrix(" not in counts and "class MatrixLossBase(" not in counts
    standalone = load_source(source).QuadraticKappaLoss()
    default = metricc.loss("qwk", task="multiclass", from_logits=True)
    g = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(40, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (40,), generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(standalone)
    gradients = []
    for module in (standalone, default, scripted):
        leaf = logits.clone().requires_grad_(True)
        module(leaf, labels).backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(standalone(logits, labels), default(logits, labels), rtol=0, atol=0)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=0, atol=0)
    torch.testing.assert_close(gradients[2], gradients[1])


def test_standalone_file_scripts_saves_and_loads_without_metricc(tmp_path):
    (tmp_path / "mcc_loss.py").write_text(metricc.emit("mcc", standalone=True), encoding="utf-8")
    script = WITHOUT_METRICC + (
        "import warnings, torch; warnings.simplefilter('ignore')\n"
        "import mcc_loss\n"
        "loss = mcc_loss.MccLoss(from_logits=True)\n"
        "p = torch.randn(50, requires_grad=True); y = (torch.rand(50) > 0.5).float()\n"
        "loss(p, y).backward(); assert torch.isfinite(p.grad).all()\n"
        "torch.jit.save(torch.jit.script(loss), 'mcc.pt')\n"
        "print(abs(float(torch.jit.load('mcc.pt')(p, y)) - float(loss(p, y))) < 1e-6)\n"
    )
    result = run_python(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_default_form_archive_runs_where_metricc_is_not_installed(tmp_path):
    loss = metricc.loss("f1", task="multiclass", average="macro", from_logits=True)
    preds, labels = torch.randn(30, 4), torch.arange(30) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(loss), str(tmp_path / "f1.pt"))
    torch.save((preds, labels), tmp_path / "batch.pt")
    script = WITHOUT_METRICC + (
        "import torch\n"
        "preds, labels = torch.load('batch.pt')\n"
        "print(repr(float(torch.jit.load('f1.pt')(preds, labels))))\n"
    )
    result = run_python(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == float(loss(preds, labels))


@pytest.mark.parametrize("standalone", [False, True], ids=["default", "standalone"])
def test_both_forms_compile_fullgraph_and_export(standalone):
    compilation = compile_metric("mcc", standalone=standalone)
    loss = getattr(load_source(compilation.source), class_name(compilation.name))()
    preds, target = batch()
    expected = loss(preds, target)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(loss, fullgraph=True)(preds, target), expected)
    exported = torch.export.export(loss, (preds, target))
    torch.testing.assert_close(exported.module()(preds, target), expected)


def test_a_file_for_another_runtime_fails_at_import_naming_both_versions():
    source = metricc.emit("f1").replace(f"require_runtime({RUNTIME_VERSION}, ", f"require_runtime({RUNTIME_VERSION + 1}, ")
    source = source.replace(f'"{metricc.__version__}")', '"9.9.9")')
    with pytest.raises(ImportError, match=rf"metricc 9\.9\.9 .*metricc {metricc.__version__}"):
        load_source(source)


def test_the_runtime_serves_each_contract_version_in_its_range():
    for version in range(OLDEST_SERVED_VERSION, RUNTIME_VERSION + 1):
        require_runtime(version, "0.0.0")
    for version in (OLDEST_SERVED_VERSION - 1, RUNTIME_VERSION + 1):
        with pytest.raises(ImportError, match=rf"for runtime version {version}, .* serves runtime versions {OLDEST_SERVED_VERSION} to {RUNTIME_VERSION}"):
            require_runtime(version, "0.0.0")


def test_emitted_files_use_the_runtime_contract_and_nothing_else():
    """Every file in generated/ and tests/compat imports from metricc only names the contract lists, checks a version
    this runtime serves before importing anything else of it, and reads only the attributes the contract names."""
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "generated").glob("*.py")) + sorted((root / "tests" / "compat").glob("*.py"))
    assert len(files) > 40
    for module, names in CONTRACT.items():
        for name in names:
            assert hasattr(importlib.import_module(module), name), (module, name)
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module.startswith("metricc")]
        for node in imports:
            assert {alias.name for alias in node.names} <= set(CONTRACT[node.module]), (path.name, node.module)
        (check,) = [node for node in tree.body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]
        assert check.value.func.id == "require_runtime"
        assert OLDEST_SERVED_VERSION <= check.value.args[0].value <= RUNTIME_VERSION
        checked_first = path.name.endswith("0_2_0.py") or check.lineno < min(node.lineno for node in imports if node.module != "metricc.runtime")
        assert checked_first, f"{path.name}: the contract check comes before the other runtime imports (0.2 checked after)"
        read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"}
        assert read <= {"eps", "parameter_values", "compute_loss"}, (path.name, read)


def test_runtime_is_inlined_once_with_no_clashing_names():
    """The standalone file's runtime: each top-level name is defined once, so no module's helper hides another's."""
    tree = ast.parse(metricc.emit("f1", standalone=True))
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert len(names) == len(set(names))


def test_importing_metricc_or_its_runtime_loads_no_sympy_or_lark():
    script = (
        "import sys, metricc, metricc.errors\n"
        "assert 'sympy' not in sys.modules and 'torch' not in sys.modules, 'metricc'\n"
        "import metricc.runtime.loss\n"
        "assert 'sympy' not in sys.modules and 'lark' not in sys.modules, 'runtime'\n"
        "metricc.gradient('f1')\n"
        "assert 'sympy' in sys.modules\n"
    )
    result = run_python(script, ROOT)
    assert result.returncode == 0, result.stderr


def test_generated_files_are_short():
    generated = ROOT / "generated"
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in generated.glob("*.py")}
    assert lengths["f1.py"] <= 150
    assert sum(lengths.values()) <= 6000


# ---- the one table of options ----------------------------------------------------------------------------------


def test_loss_options_and_cli_flags_come_from_the_table():
    assert tuple(field for field in LossOptions.__dataclass_fields__) == OPTION_NAMES
    compile_flags = {action.dest for action in build_parser()._subparsers._group_actions[0].choices["compile"]._actions}
    assert set(OPTION_NAMES) <= compile_flags


def test_validate_args_is_a_cli_flag(tmp_path):
    output = tmp_path / "f1.py"
    assert metricc.cli.main(["compile", "f1", "--no-validate-args", "-o", str(output)]) == 0
    assert '"validate_args": False' in output.read_text()


@pytest.mark.parametrize(
    "option, bad",
    [("steepness", -1.0), ("threshold", 1.5), ("average", "mean"), ("count_momentum", 2.0), ("class_weights", [0.0]), ("from_logits", 1)],
)
def test_compiler_and_constructor_give_the_same_message(option, bad):
    """One validator: metricc.loss(...) at compile time and the module's constructor refuse a value alike."""
    extra = dict(task="multiclass", average="macro") if option == "class_weights" else {}
    with pytest.raises(metricc.OptionError) as compiling:
        make_options(**extra, **{option: bad})
    loss_class = type(metricc.loss("f1", **extra))
    with pytest.raises(ValueError) as constructing:
        loss_class(**{option: bad})
    assert str(compiling.value) == str(constructing.value)
    assert option in str(compiling.value)


def test_every_option_has_help_and_a_default_that_validates():
    assert all(option.help for option in OPTIONS)
    defaults = make_options()
    assert defaults.approximation == "anyloss" and defaults.direction == "auto"


def test_each_compiled_metric_has_a_forward_of_its_own():
    """torch.compile limits recompilations per function: a forward shared by every metricc loss would let eight
    differently configured losses in one process use up the limit of all of them."""
    forwards = {type(metricc.loss(name, **options)).forward.__code__ for name, options in (("f1", {}), ("mcc", {}), ("qwk", {"task": "multiclass"}))}
    assert len(forwards) == 3


def test_a_file_generated_by_metricc_0_2_0_still_imports_and_trains():
    """tests/compat holds generated/f1.py as metricc 0.2.0 wrote it, never regenerated: the runtime must keep serving
    it (the contract require_runtime checks), with the loss and gradient of today's compiled F1."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "compat" / "generated_f1_0_2_0.py"
    spec = importlib.util.spec_from_file_location("generated_f1_0_2_0", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old, new = module.F1Loss(from_logits=True), metricc.loss("f1", from_logits=True)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 4, generator=generator)
    target = (features[:, 0] > 0.5).float()
    with torch.random.fork_rng():  # the model's start, whatever the tests before it drew
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        logits = model(features).squeeze(1)
        loss = old(logits, target)
        (gradient,) = torch.autograd.grad(loss, logits, retain_graph=True)
        torch.testing.assert_close(gradient, torch.autograd.grad(new(logits, target), logits)[0])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_an_approximation_option_set_after_construction_takes_effect_scripted_too():
    """approximation, steepness, threshold and width live in one Approximation; setting one, as any option can be
    set, changes the next step exactly as constructing with it would."""
    preds, target = batch()
    loss = metricc.loss("f1")
    loss.approximation, loss.steepness, loss.threshold = "anyloss", 10.0, 0.4
    expected = metricc.loss("f1", approximation="anyloss", steepness=10.0, threshold=0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(loss)
    for module in (loss, scripted):
        torch.testing.assert_close(module(preds, target), expected(preds, target), rtol=0, atol=0)


def _global_names(code) -> set:
    """Every global name a code object and the code nested in it read."""
    import dis

    names = {instruction.argval for instruction in dis.get_instructions(code) if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            names |= _global_names(constant)
    return names


@pytest.mark.parametrize(
    "metric, options",
    [("f1", {}), ("fbeta", dict(ce_weight=0.5, count_momentum=0.9)), ("yule_y", dict(task="multilabel", average="macro")), ("qwk", dict(task="multiclass"))],
)
def test_a_standalone_file_defines_every_name_it_reads(metric, options):
    """What the inliner leaves out is never read: every global a standalone file's code reads is defined in it (or
    is a builtin or an import)."""
    import builtins

    source = metricc.emit(metric, standalone=True, **options)
    tree = ast.parse(source)
    defined = set(dir(builtins)) | {"__annotations__"}  # class bodies with annotations read it
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    missing = _global_names(compile(source, "standalone.py", "exec")) - defined
    assert not missing, missing


def test_every_runtime_module_is_inlined_in_an_order_its_imports_allow():
    from pathlib import Path

    from metricc.emitter import RUNTIME_MODULES, runtime_definitions

    runtime = Path(metricc.__file__).resolve().parent / "runtime"
    assert set(RUNTIME_MODULES) == {path.stem for path in runtime.glob("*.py")} - {"__init__", "version"}
    assert runtime_definitions()  # each module's relative imports come earlier in RUNTIME_MODULES, or this raises
