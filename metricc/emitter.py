"""Stage 4: a derivation becomes the source of a loss module file: the metric's docstring, its formula functions
and a subclass of its form's runtime base class (CountLossBase, MatrixLossBase); with standalone=True the runtime
is inlined and the file imports only torch. One path for every form: what a form adds (its formula functions, its
subclass's hooks, its docstring's own sections) is one `FormCode`, from the form's entry in `_FORM_CODE`.

Names: the emitter's own names (counts, intermediates, helpers) never start with PARAMETER_PREFIX, and a metric
parameter `beta` is always written `param_beta`, so no name a user chooses can shadow one the code relies on.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Sequence, Tuple

import sympy

from . import __version__
from .guards import Singularity, guard_together
from .derive import Derivation, per_sample_weights
from .errors import OptionError
from .language import COUNTS_FORM, MATRIX_FORM, Parameter
from .arguments import LossOptions
from .printer import FloatPrinter, TorchPrinter, TritonPrinter
from .runtime import RUNTIME_VERSION
from .runtime.options import DEFAULTS

PARAMETER_PREFIX = "param_"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_COUNT_VARIABLES = {v.symbol: v.code_name for v in COUNTS_FORM.variables}
_RUNTIME = Path(__file__).resolve().parent / "runtime"
#: The runtime's modules in an order where each comes after the ones it imports: the standalone file's body.
RUNTIME_MODULES = ("options", "guards", "inputs", "approximate", "counts", "reduce", "backward", "compound", "matrix", "loss")
#: The imports a standalone file opens with; every runtime module's imports must be among them.
STANDALONE_IMPORTS = (
    "import difflib",
    "import inspect",
    "import math",
    "from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple",
    "",
    "import torch",
    "from torch import Tensor",
)
#: Each compiled metric's own forward (the base's, repeated): torch.compile counts recompilations per function.
_OWN_FORWARD = "    def forward(self, preds: Tensor, target: Tensor) -> Tensor:\n        return self.compute_loss(preds, target)\n"


def class_name(name: str) -> str:
    """'balanced_accuracy' -> 'BalancedAccuracyLoss', after checking the name is a plain identifier."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise OptionError(
            f"name {name!r} is not usable: use letters, digits and underscores, starting with a letter (at most 64)"
        )
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) + "Loss"


def parameter_variable(parameter: Parameter) -> str:
    """The Python name of a metric parameter in emitted code."""
    return PARAMETER_PREFIX + parameter.name


@dataclass(frozen=True)
class GuardedDerivation:
    """A four-count metric's value and per-sample weights with guards in place, and the singularities that put
    them there."""

    value: sympy.Expr
    weight_if_positive: sympy.Expr  # dTP - dFN
    weight_if_negative: sympy.Expr  # dFP - dTN
    singularities: Tuple[Singularity, ...]


def guarded(derivation: Derivation) -> GuardedDerivation:
    """Guards for the value and for the weights dTP - dFN (positive sample) and dFP - dTN (negative sample)."""
    (value, if_positive, if_negative), singularities = guard_together([derivation.value, *per_sample_weights(derivation)])
    return GuardedDerivation(value, if_positive, if_negative, singularities)


def _intermediate_lines(
    outputs: Sequence[Tuple[str, sympy.Expr]], names: Dict[sympy.Symbol, str], printer: TorchPrinter, inline_numbers: bool = False,
) -> Tuple[list, list]:
    """The named intermediates (x0, x1, ... from SymPy's CSE) as lines of code, and the outputs reduced to them;
    inline_numbers: an intermediate that is a number is written where it is used, not named (Triton makes a named
    Python float a float32 value, where a literal in an expression keeps float64's precision)."""
    replacements, reduced = sympy.cse([e for _, e in outputs], symbols=sympy.numbered_symbols("x"), order="canonical")
    if inline_numbers:
        numbers: Dict[sympy.Symbol, sympy.Expr] = {}
        named = []
        for symbol, expression in replacements:
            expression = expression.xreplace(numbers)
            if expression.is_number:
                numbers[symbol] = expression
            else:
                named.append((symbol, expression))
        replacements, reduced = named, [expression.xreplace(numbers) for expression in reduced]
    lines = []
    for symbol, expression in replacements:
        names[symbol] = str(symbol)
        text = printer.doprint(expression)
        if printer.is_tensor(expression):
            printer.tensor_symbols.add(symbol)
        lines.append(f"    {symbol} = {text}")
    return lines, reduced


def _check_names(names: Dict[sympy.Symbol, str], parameters: Sequence[Parameter]) -> None:
    """No name the emitter wrote may start with PARAMETER_PREFIX, the parameters' namespace."""
    emitted = set(names.values()) - {parameter_variable(p) for p in parameters}
    assert not any(n.startswith(PARAMETER_PREFIX) for n in emitted), "the emitter's names must stay out of the parameters' namespace"


def _function_source(
    name: str, outputs: Sequence[Tuple[str, sympy.Expr]], parameters: Sequence[Parameter], doc: str, on_floats: bool = False,
    inputs: Dict[sympy.Symbol, str] = _COUNT_VARIABLES,
) -> str:
    """One formula function of the inputs (the four counts, or matrix aggregates): named intermediates (x0, x1, ...
    from SymPy's CSE), then the outputs, each a tensor of the inputs' shape (or a float)."""
    names: Dict[sympy.Symbol, str] = dict(inputs)
    names.update({p.symbol: parameter_variable(p) for p in parameters})
    like = next(iter(inputs.values()))
    printer = FloatPrinter(names) if on_floats else TorchPrinter(names, set(inputs), like)
    lines, reduced = _intermediate_lines(outputs, names, printer)
    for (output, _), expression in zip(outputs, reduced):
        if on_floats:
            text = printer.doprint(expression)
        elif expression == 0:
            text = f"torch.zeros_like({like})"
        else:
            text = printer.doprint(expression)
            if not printer.is_tensor(expression):
                text = f"torch.full_like({like}, {text})"
        lines.append(f"    {output} = {text}")
    _check_names(names, parameters)
    count_type = "float" if on_floats else "Tensor"
    arguments = ", ".join(
        [f"{variable}: {count_type}" for variable in inputs.values()] + ["eps: float"] + [f"{parameter_variable(p)}: float" for p in parameters]
    )
    results = [output for output, _ in outputs]
    returns = count_type if len(results) == 1 else f"Tuple[{', '.join([count_type] * len(results))}]"
    body = "\n".join(lines)
    return f'def {name}({arguments}) -> {returns}:\n    """{doc}"""\n{body}\n    return {", ".join(results)}\n'


def _triton_function_source(
    name: str, outputs: Sequence[Tuple[str, sympy.Expr]], parameters: Sequence[Parameter], doc: str,
    inputs: Dict[sympy.Symbol, str] = _COUNT_VARIABLES,
) -> str:
    """A formula function in Triton's language on blocks of the inputs (the four counts, or every aggregate of the
    matrix, in their form's order), its parameters the compile-time tuple `parameters` in their declared order,
    each made a block of the inputs' dtype (a Python float in a float64 kernel is exact there, and nowhere rounded
    to float32); plain Python that names `tl` and the GPU path's guards, which metricc.runtime.gpu binds when it
    compiles it (a file that is imported never imports triton). An output that is 0 (a partial by an aggregate the
    metric does not read) is a block of zeros."""
    names: Dict[sympy.Symbol, str] = dict(inputs)
    names.update({p.symbol: parameter_variable(p) for p in parameters})
    like = next(iter(inputs.values()))
    printer = TritonPrinter(names, set(inputs))
    loads = [f"    {parameter_variable(p)} = tl.zeros_like({like}) + parameters[{index}]" for index, p in enumerate(parameters)]
    lines, reduced = _intermediate_lines(outputs, names, printer, inline_numbers=True)
    for (output, _), expression in zip(outputs, reduced):
        text = printer.doprint(expression)
        # a block of the inputs' shape even where the expression is a constant or reads parameters alone
        if expression == 0:
            text = f"tl.zeros_like({like})"
        elif not printer.is_tensor(expression):
            text = f"tl.zeros_like({like}) + {text}"
        lines.append(f"    {output} = {text}")
    _check_names(names, parameters)
    arguments = ", ".join([*inputs.values(), "eps", "parameters"])
    body = "\n".join(loads + lines)
    return f'def {name}({arguments}):\n    """{doc}"""\n{body}\n    return {", ".join(output for output, _ in outputs)}\n'


def _doc_text(text: str) -> str:
    """SymPy's printing of validated symbols holds no quotes or backslashes; make sure of it anyway."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _wrap(text: str, indent: str, width: int = 100) -> str:
    words = text.split(" ")
    lines, line = [], indent
    for word in words:
        if len(line) + len(word) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent + "    "
        line += word + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def class_defaults(options: LossOptions) -> Dict[str, object]:
    """The compiled options that differ from the runtime's defaults: the emitted class's constructor defaults.
    The approximation and the direction, resolved when compiling, are always among them."""
    defaults = {}
    for name, default in DEFAULTS.items():
        value = getattr(options, name)
        if value != default:
            defaults[name] = list(value) if name == "class_weights" and value is not None else value
    return defaults


def _literal(value: object) -> str:
    """A Python literal for an option or bound: repr, with infinities spelled so that they parse."""
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return 'float("inf")' if value > 0 else '-float("inf")'
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _parameter_lines(parameters: Sequence[Parameter]) -> str:
    return "\n".join(
        f"    {p.name} = {float(p.default)!r}, domain {p.domain_text()} (written {parameter_variable(p)} below)" for p in parameters
    ) or "    none"


def _imports_text(standalone: bool) -> str:
    if standalone:
        return (
            f"This file imports only torch: the parts of metricc {__version__}'s runtime (the package metricc.runtime) that this\n"
            "metric uses are inlined above the formula, each under the name of its module (metricc compile --standalone)."
        )
    return "This file imports torch and metricc's runtime (metricc.runtime), which holds everything but the formula."


def _class_attributes(name: str, options: LossOptions, parameters: Sequence[Parameter]) -> str:
    """The subclass's name, constructor defaults and parameters with their domains, as class attributes."""
    defaults = ", ".join(f"{_literal(option)}: {_literal(value)}" for option, value in class_defaults(options).items())
    specs = "".join(
        f"        {_literal(p.name)}: ParameterSpec(default={_literal(float(p.default))}, lower={_literal(p.lower)}, "
        f"upper={_literal(p.upper)}, lower_open={p.lower_open}, upper_open={p.upper_open}),\n"
        for p in parameters
    )
    declared = f"{{\n{specs}    }}" if parameters else "{}"
    return f"    metric_name = {_literal(name)}\n    defaults = {{{defaults}}}\n    metric_parameters = {declared}\n"


def _module_file(docstring: str, metric_code: str, base_class: str, typing_names: str, standalone: bool) -> str:
    """The file: docstring, imports (of the runtime, or the runtime inlined), then the metric's code."""
    helpers = [helper for helper in guard_helpers() if re.search(rf"\b{helper}\(", metric_code)]
    from_loss = [base_class] + (["ParameterSpec"] if "ParameterSpec(" in metric_code else [])
    if standalone:
        header = "\n".join(STANDALONE_IMPORTS) + "\n\n\n" + inlined_runtime((*from_loss, *helpers))
    else:
        lines = ["import math"] if "math." in metric_code else []
        lines += [f"from typing import {typing_names}", "", "import torch", "from torch import Tensor", "", "from metricc.runtime import require_runtime"]
        # the contract check comes first, so that a runtime that does not serve this file says so, naming both versions
        lines += ["", f"require_runtime({RUNTIME_VERSION}, {_literal(__version__)})", ""]
        if helpers:
            lines.append(f"from metricc.runtime.guards import {', '.join(helpers)}  # noqa: E402")
        lines.append(f"from metricc.runtime.loss import {', '.join(from_loss)}  # noqa: E402")
        header = "\n".join(lines)
    return f'"""{docstring}\n"""\n\n{header}\n\n\n{metric_code}'


@dataclass(frozen=True)
class FormCode:
    """What one form puts in a loss file: its formula functions, its subclass's attributes and formula hooks, the
    typing names they need, and its docstring's own parts (the metric's introduction, the sections between the
    formula and the parameters, a closing note) and the singular points its guards cover."""

    functions: Tuple[str, ...]
    attributes: str
    hooks: str
    typing_names: str
    introduction: str
    sections: str
    closing: str
    singularities: Tuple[Singularity, ...]


def _count_code(
    derivation: Derivation, name: str, parameters: Sequence[Parameter], loss_text: str, direction: str, standalone: bool,
) -> FormCode:
    """The four counts: the metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), on
    tensors and on floats, and the hooks formula, formula_and_weights and formula_on_floats."""
    safe = guarded(derivation)
    # the names the formula functions have always returned (generated/ stays byte-identical)
    weights = [("value", safe.value), ("positive", safe.weight_if_positive), ("negative", safe.weight_if_negative)]
    functions = (
        _function_source("metric_value", [("value", safe.value)], parameters, "The soft metric from the soft counts."),
        _function_source(
            "metric_value_and_weights", weights, parameters,
            "The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions.",
        ),
        _function_source(
            "metric_value_and_weights_of_floats", weights, parameters,
            "metric_value_and_weights on Python floats, for counts that are single numbers.", on_floats=True,
        ),
    )
    attributes = ""
    if not standalone:
        functions += (
            _triton_function_source(
                "metric_value_and_weights_in_triton", weights, parameters,
                "metric_value_and_weights in Triton's language, for the GPU path's one formula launch (metricc.runtime.gpu).",
            ),
        )
        attributes = "    formula_in_triton = staticmethod(metric_value_and_weights_in_triton)\n"
    values = "".join(f', self.parameter_values["{p.name}"]' for p in parameters)
    hooks = (
        ("formula", "Tensor", "Tensor", "metric_value"),
        ("formula_and_weights", "Tensor", "Tuple[Tensor, Tensor, Tensor]", "metric_value_and_weights"),
        ("formula_on_floats", "float", "Tuple[float, float, float]", "metric_value_and_weights_of_floats"),
    )
    methods = "\n".join(
        f"    def {hook}(self, tp: {kind}, fp: {kind}, fn: {kind}, tn: {kind}) -> {returns}:\n"
        f"        return {function}(tp, fp, fn, tn, self.eps{values})\n"
        for hook, kind, returns, function in hooks
    )
    positive, negative = per_sample_weights(derivation)
    partial_lines = "\n".join(_wrap(f"d {name} / d {count} = {sympy.sstr(partial)}", "    ") for count, partial in derivation.partials_by_name().items())
    sections = (
        f"Partial derivatives:\n\n{partial_lines}\n\n"
        f"Per-sample weights d {name} / d a_i (the backward pass uses these, not autograd through the formula):\n\n"
        f"{_wrap(f'positive, y_i = 1: dTP - dFN = {sympy.sstr(positive)}', '    ')}\n"
        f"{_wrap(f'negative, y_i = 0: dFP - dTN = {sympy.sstr(negative)}', '    ')}\n\n"
    )
    return FormCode(
        functions, attributes, methods, "Tuple", f"Metric ({direction}d; the loss is {loss_text})", sections,
        "Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).\n",
        safe.singularities,
    )


def _matrix_code(
    derivation: Derivation, name: str, parameters: Sequence[Parameter], loss_text: str, direction: str, standalone: bool,
) -> FormCode:
    """The whole confusion matrix: the metric and its partial by each aggregate it reads, and the hooks formula
    and formula_and_partials; the runtime turns the partials into G = d metric / d M."""
    variables = derivation.variables
    inputs = {v.symbol: v.code_name for v in variables}
    (value, *partials), singularities = guard_together([derivation.value, *derivation.partials])
    outputs = [("value", value)] + [(f"d_{v.code_name}", p) for v, p in zip(variables, partials)]
    functions = (
        _function_source("metric_value", outputs[:1], parameters, "The soft metric from the aggregates of the soft confusion matrix.", inputs=inputs),
        _function_source(
            "metric_value_and_partials", outputs, parameters,
            "The metric and its partial derivative by each aggregate, sharing subexpressions.", inputs=inputs,
        ),
    )
    attributes = ""
    if not standalone:
        # every aggregate in and every partial out, in the form's order, so that one kernel calls any matrix metric
        every = {v.symbol: v.code_name for v in MATRIX_FORM.variables}
        read = dict(zip(variables, partials))
        every_partial = [(f"d_{v.code_name}", read.get(v, sympy.Integer(0))) for v in MATRIX_FORM.variables]
        functions += (
            _triton_function_source(
                "metric_value_and_partials_in_triton", [("value", value)] + every_partial, parameters,
                "metric_value_and_partials in Triton's language, of every aggregate, for the GPU path's one loss launch.",
                inputs=every,
            ),
        )
        attributes = "    formula_in_triton = staticmethod(metric_value_and_partials_in_triton)\n"
    arguments = ", ".join([f'aggregates["{v.name}"]' for v in variables] + ["self.eps"] + [f'self.parameter_values["{p.name}"]' for p in parameters])
    partial_names = ", ".join(f"d_{v.code_name}" for v in variables)
    partial_dict = ", ".join(f'"{v.name}": d_{v.code_name}' for v in variables)
    hooks = (
        f"    def formula(self, aggregates: Dict[str, Tensor]) -> Tensor:\n"
        f"        return metric_value({arguments})\n\n"
        f"    def formula_and_partials(self, aggregates: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:\n"
        f"        value, {partial_names} = metric_value_and_partials({arguments})\n"
        f"        return value, {{{partial_dict}}}\n"
    )
    names = derivation.names
    attributes = f"    aggregates = ({', '.join(_literal(a) for a in names)}{',' if len(names) == 1 else ''})\n" + attributes
    aggregate_lines = "\n".join(f"    {v.name}: {v.meaning}" for v in variables)
    partial_lines = "\n".join(_wrap(f"d{a} = d {name} / d {a} = {sympy.sstr(p)}", "    ") for a, p in derivation.partials_by_name().items())
    sections = (
        f"Aggregates:\n\n{aggregate_lines}\n\n"
        f"Partial derivatives:\n\n{partial_lines}\n\n"
        "Gradient with respect to the matrix (the backward pass uses it, not autograd through the formula):\n\n"
        f"{_wrap(f'G[i, j] = d {name} / d M[i, j] = {derivation.cell_gradient_text()}', '    ')}\n"
        "    and the weight of a[n, j] is G[label of n, j].\n\n"
    )
    introduction = (
        "Metric of the whole C x C soft confusion matrix M[i, j] = sum_n y[n, i] a[n, j] (true class i, predicted\n"
        f"class j; row sums r, column sums c), {direction}d; the loss is {loss_text}"
    )
    return FormCode(functions, attributes, hooks, "Dict, Tuple", introduction, sections, "", singularities)


#: Each form's code, by the form's kind (language.FORMS).
_FORM_CODE = {"counts": _count_code, "matrix": _matrix_code}


def emit_module(derivation: Derivation, name: str, options: LossOptions, standalone: bool = False) -> str:
    """The complete source of the loss module file; deterministic for the same input."""
    if options.direction not in ("maximize", "minimize"):
        raise OptionError("emit_module needs a resolved direction ('maximize' or 'minimize')")
    loss_class = class_name(name)
    parameters = derivation.definition.parameters
    loss_text = f"1 - {name}" if options.direction == "maximize" else name
    code = _FORM_CODE[derivation.form.kind](derivation, name, parameters, loss_text, options.direction, standalone)
    base_class = derivation.form.base_class
    subclass = (
        f"class {loss_class}({base_class}):\n"
        f'    """{name} as a loss; {base_class} documents the inputs and the options."""\n\n'
        f"{_class_attributes(name, options, parameters)}{code.attributes}\n"
        f"{_OWN_FORWARD}\n"
        f"{code.hooks}"
    )
    metric_code = "\n\n".join(code.functions) + "\n\n" + subclass
    singular_lines = "\n".join(_wrap(f"- {s.describe()}", "    ") for s in code.singularities) or "    none"
    docstring = _doc_text(
        f"{loss_class}: {name} as a loss, compiled by metricc {__version__}.\n\n"
        f"{code.introduction}:\n\n"
        f"{_wrap(f'{name} = {sympy.sstr(derivation.value)}', '    ')}\n\n"
        f"{code.sections}"
        f"Metric parameters:\n{_parameter_lines(parameters)}\n\n"
        f"Singular points and their guards (eps = {options.eps!r} by default):\n{singular_lines}\n\n"
        f"{code.closing}{_imports_text(standalone)}\nIt is generated: edit the metric, not this file."
    )
    return _module_file(docstring, metric_code, base_class, code.typing_names, standalone)


@dataclass(frozen=True)
class RuntimeDefinition:
    """One top-level statement of a runtime module, as a standalone file may carry it: its text (with the comment
    lines just above it), the names it defines and the names it reads."""

    module: str
    text: str
    defines: frozenset
    mentions: frozenset


@lru_cache(maxsize=1)
def runtime_definitions() -> Tuple[RuntimeDefinition, ...]:
    """Every top-level statement of the runtime's modules but their docstrings and imports, in dependency order
    (RUNTIME_MODULES); an import a standalone file's own imports do not cover is an error."""
    definitions = []
    allowed = {line for line in STANDALONE_IMPORTS if line}
    for module in RUNTIME_MODULES:
        text = (_RUNTIME / f"{module}.py").read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.splitlines()
        for node in tree.body:
            is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            if is_docstring and node is tree.body[0]:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                statement = ast.unparse(node)
                if (isinstance(node, ast.Import) or node.level == 0) and not _import_allowed(statement, allowed):
                    raise AssertionError(f"runtime/{module}.py imports {statement!r}, which a standalone file lacks")
                earlier = RUNTIME_MODULES[: RUNTIME_MODULES.index(module)]
                if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module not in earlier:
                    raise AssertionError(f"runtime/{module}.py imports runtime/{node.module}.py, which RUNTIME_MODULES does not put before it")
                continue
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
            while start > 0 and lines[start - 1].lstrip().startswith("#"):
                start -= 1
            body = "\n".join(lines[start:node.end_lineno])
            definitions.append(RuntimeDefinition(module, body, frozenset(_defined_names(node)), frozenset(_mentioned_names(node, body))))
    return tuple(definitions)


_TYPE_COMMENT = re.compile(r"#\s*type:(.*)")


def _mentioned_names(node: ast.stmt, text: str) -> Sequence[str]:
    """The names a statement's code reads, and those of its type comments (which TorchScript reads too)."""
    names = [name.id for name in ast.walk(node) if isinstance(name, ast.Name)]
    for comment in _TYPE_COMMENT.findall(text):
        names += re.findall(r"[A-Za-z_][A-Za-z0-9_]*", comment)
    return names


def _defined_names(node: ast.stmt) -> Sequence[str]:
    """The names a top-level statement binds, also inside an if or try block; none for a statement that binds
    nothing (a call, say), which is always carried, with what it reads."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.If, ast.Try)):
        blocks = [node.body, node.orelse] + ([node.finalbody] + [handler.body for handler in node.handlers] if isinstance(node, ast.Try) else [])
        return [name for block in blocks for statement in block for name in _defined_names(statement)]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
    return [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]


@lru_cache(maxsize=1)
def guard_helpers() -> Tuple[str, ...]:
    """The functions of runtime/guards.py, which emitted formulas call (printer.py writes them), in its order."""
    return tuple(name for d in runtime_definitions() if d.module == "guards" for name in sorted(d.defines))


@lru_cache(maxsize=8)
def inlined_runtime(needed: Tuple[str, ...]) -> str:
    """The runtime definitions a standalone file needs, in dependency order: those of `needed` (its base class and
    the helpers its formula calls) and, transitively, every definition their text mentions. A four-count metric's
    file carries no matrix code and a matrix metric's no soft counts."""
    definitions = runtime_definitions()
    always = [d for d in definitions if not d.defines]
    wanted, frontier = set(), set(needed).union(*(d.mentions for d in always))
    while frontier:
        wanted |= frontier
        frontier = set().union(*(d.mentions for d in definitions if d.defines & frontier)) - wanted
    parts, module = [], None
    for definition in definitions:
        if not (definition.defines & wanted or not definition.defines):
            continue
        text = definition.text
        if definition.module != module:
            module = definition.module
            text = f"# ---- metricc.runtime.{module} ----\n\n{text}"
        parts.append(text)
    return "\n\n\n".join(parts)


def _import_allowed(statement: str, allowed: set) -> bool:
    """Whether an import of a runtime module is covered by the standalone file's own imports."""
    if statement in allowed:
        return True
    match = re.fullmatch(r"from (\S+) import (.+)", statement)
    if not match:
        return False
    for line in allowed:
        head = f"from {match.group(1)} import "
        if line.startswith(head) and set(match.group(2).split(", ")) <= set(line[len(head):].split(", ")):
            return True
    return False
