"""Stage 4: a derivation becomes the source text of a self-contained, TorchScript-compatible loss module."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import sympy
from sympy.printing.precedence import precedence

from . import __version__
from .analyse import ClampAtZero, SafeDenominator, SignedDenominator, Singularity, guard
from .derive import Derivation, per_sample_weights
from .errors import InvalidMetricError, OptionError
from .options import LossOptions
from .parse import COUNT_NAMES, COUNTS, Parameter

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_COUNT_VARIABLES = {count: name.lower() for count, name in zip(COUNTS, COUNT_NAMES)}


def class_name(name: str) -> str:
    """'balanced_accuracy' -> 'BalancedAccuracyLoss', after checking the name is a plain identifier."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise OptionError(
            f"name {name!r} is not usable: use letters, digits and underscores, starting with a letter (at most 64)"
        )
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) + "Loss"


class TorchPrinter:
    """Prints a SymPy expression as torch code over count tensors (tp, fp, fn, tn) and float parameters."""

    # x ** (-1/2) in a product: a factor torch.rsqrt(x) (one op), not a division by torch.sqrt(x)
    rsqrt_factors = True
    guards = {
        SafeDenominator: "torch.clamp({}, min=eps)",
        SignedDenominator: "signed_clamp({}, eps)",
        ClampAtZero: "torch.clamp({}, min=0.0)",
    }

    def __init__(self, names: Dict[sympy.Symbol, str], tensor_symbols: Set[sympy.Symbol]):
        self.names = names
        self.tensor_symbols = tensor_symbols

    def is_tensor(self, expression: sympy.Expr) -> bool:
        """Whether the expression depends on a count (a tensor), not only on float parameters."""
        return any(symbol in self.tensor_symbols for symbol in expression.free_symbols)

    def print(self, expression: sympy.Expr) -> str:
        return self._print(expression)

    def _parenthesize(self, expression: sympy.Expr, level: int) -> str:
        text = self._print(expression)
        return f"({text})" if precedence(expression) < level else text

    def _print(self, e: sympy.Expr) -> str:
        if e.is_Symbol:
            return self.names[e]
        if e.is_Integer or e.is_Rational or e.is_Float:
            value = float(e)
            text = repr(value)
            return f"({text})" if value < 0 else text
        if e.is_Add:
            return self._print_add(e)
        if e.is_Mul:
            return self._print_mul(e)
        if e.is_Pow:
            return self._print_pow(e)
        return self._print_function(e)

    def _print_add(self, e: sympy.Expr) -> str:
        terms = sorted(e.args, key=sympy.default_sort_key)
        # lead with a positive term: "b - a" is one tensor op, "-a + b" two
        terms.sort(key=lambda term: bool(term.as_coeff_Mul()[0].is_negative))
        text = self._print(terms[0])
        for term in terms[1:]:
            coefficient, rest = term.as_coeff_Mul()
            if coefficient.is_negative:
                negated = -term
                text += f" - {self._parenthesize(negated, precedence(e) + 1)}"
            else:
                text += f" + {self._parenthesize(term, precedence(e))}"
        return text

    def _print_mul(self, e: sympy.Expr) -> str:
        coefficient, factors = e.as_coeff_mul()
        numerator: List[sympy.Expr] = []
        denominator: List[sympy.Expr] = []
        for factor in sorted(factors, key=sympy.default_sort_key):
            rsqrt = factor.is_Pow and factor.exp == sympy.Rational(-1, 2) and self.rsqrt_factors
            if factor.is_Pow and factor.exp.is_negative and factor.exp.is_number and not rsqrt:
                denominator.append(sympy.Pow(factor.base, -factor.exp, evaluate=False) if factor.exp != -1 else factor.base)
            else:
                numerator.append(factor)
        level = precedence(e)
        if coefficient < 0:
            return f"-{self._parenthesize(sympy.Mul(-coefficient, *factors, evaluate=False), level + 1)}"
        if coefficient == 1 and not numerator and self.is_tensor(e):
            # 1 / (a b) as torch.reciprocal(a * b): a tensor op, where 1.0 / t goes through Python's reflected division
            return f"torch.reciprocal({self._print(sympy.Mul(*denominator, evaluate=False))})"
        parts = [self._parenthesize(f, level) for f in numerator]
        if coefficient != 1 or not parts:
            parts.insert(0, self._print(coefficient))
        text = " * ".join(parts)
        for factor in denominator:
            text += f" / {self._parenthesize(factor, level + 1)}"
        return text

    def _print_pow(self, e: sympy.Expr) -> str:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return self._call("torch.sqrt", base)
        if exponent == sympy.Rational(-1, 2):
            return self._call("torch.rsqrt", base)
        if not self.is_tensor(base) and self.is_tensor(exponent):
            return f"torch.pow({self._print(base)}, {self._print(exponent)})"
        if self.is_tensor(base) and exponent == 2:
            return f"torch.square({self._print(base)})"
        if self.is_tensor(base) and exponent.is_Rational and exponent.is_negative:
            return f"torch.reciprocal({self._print(sympy.Pow(base, -exponent, evaluate=False))})"
        operand = self._parenthesize(base, precedence(e) + 1)
        if exponent.is_Rational:
            magnitude = abs(exponent)
            power = str(int(magnitude)) if magnitude.is_Integer else repr(float(magnitude))
            raised = operand if magnitude == 1 else f"{operand} ** {power}"
            return f"1.0 / {raised}" if exponent.is_negative else raised
        return f"{operand} ** {self._parenthesize(exponent, precedence(e) + 1)}"

    def _call(self, function: str, argument: sympy.Expr) -> str:
        text = self._print(argument)
        if not self.is_tensor(argument):
            text = f"torch.full_like(tp, {text})"
        return f"{function}({text})"

    def _print_guard(self, e: sympy.Expr) -> Optional[str]:
        """A guard (analyse.GUARDS) around its printed argument, or None for any other expression."""
        template = self.guards.get(type(e))
        return None if template is None else template.format(self._print(e.args[0]))

    def _print_function(self, e: sympy.Expr) -> str:
        guarded = self._print_guard(e)
        if guarded is not None:
            return guarded
        simple = {sympy.exp: "torch.exp", sympy.log: "torch.log", sympy.Abs: "torch.abs", sympy.sign: "torch.sign"}
        if e.func in simple:
            return self._call(simple[e.func], e.args[0])
        if isinstance(e, sympy.Heaviside):
            argument = e.args[0]
            inner = self._print(argument) if self.is_tensor(argument) else f"torch.full_like(tp, {self._print(argument)})"
            return f"torch.heaviside({inner}, torch.full_like(tp, 0.5))"
        if isinstance(e, (sympy.Min, sympy.Max)):
            pairwise = "torch.minimum" if isinstance(e, sympy.Min) else "torch.maximum"
            bound = "max" if isinstance(e, sympy.Min) else "min"
            arguments = sorted(e.args, key=sympy.default_sort_key)
            tensors = [a for a in arguments if self.is_tensor(a)]
            constants = [a for a in arguments if not self.is_tensor(a)]
            text = self._print(tensors[0]) if tensors else f"torch.full_like(tp, {self._print(constants.pop())})"
            for other in tensors[1:]:
                text = f"{pairwise}({text}, {self._print(other)})"
            for constant in constants:
                text = f"torch.clamp({text}, {bound}={self._print(constant)})"
            return text
        raise InvalidMetricError(f"metricc cannot emit code for {sympy.sstr(e)} ({type(e).__name__})")


class FloatPrinter(TorchPrinter):
    """The same expression over Python floats (tp, fp, fn, tn as numbers): for a batch whose counts are single
    numbers, each operation is then a few nanoseconds instead of a tensor operation's microseconds.

    Where torch would return inf or NaN (0/0, the log of 0, an overflow) math raises ArithmeticError or
    ValueError, and a non-integer power of a negative number goes through math.pow, which raises too, rather
    than turning complex: the caller then falls back to the tensor formula.
    """

    rsqrt_factors = False
    guards = {SafeDenominator: "max({}, eps)", SignedDenominator: "signed_clamp_float({}, eps)", ClampAtZero: "max({}, 0.0)"}

    def __init__(self, names: Dict[sympy.Symbol, str]):
        super().__init__(names, set())

    def _print_pow(self, e: sympy.Expr) -> str:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if exponent == sympy.Rational(-1, 2):
            return f"(1.0 / math.sqrt({self._print(base)}))"
        if exponent.is_Integer:
            operand = self._parenthesize(base, precedence(e) + 1)
            raised = operand if abs(exponent) == 1 else f"{operand} ** {abs(int(exponent))}"
            return f"(1.0 / {raised})" if exponent.is_negative else raised
        return f"math.pow({self._print(base)}, {self._print(exponent)})"

    def _print_function(self, e: sympy.Expr) -> str:
        guarded = self._print_guard(e)
        if guarded is not None:
            return guarded
        argument = self._print(e.args[0])
        simple = {sympy.exp: "math.exp", sympy.log: "math.log", sympy.Abs: "abs", sympy.sign: "sign_float"}
        if e.func in simple:
            return f"{simple[e.func]}({argument})"
        if isinstance(e, sympy.Heaviside):
            return f"heaviside_float({argument})"
        if isinstance(e, (sympy.Min, sympy.Max)):
            function = "min" if isinstance(e, sympy.Min) else "max"
            return f"{function}({', '.join(self._print(a) for a in sorted(e.args, key=sympy.default_sort_key))})"
        raise InvalidMetricError(f"metricc cannot emit code for {sympy.sstr(e)} ({type(e).__name__})")


def _shared(expressions: Sequence[sympy.Expr]) -> Tuple[List[Tuple[sympy.Symbol, sympy.Expr]], List[sympy.Expr]]:
    """Common subexpressions, named x0, x1, ... in order of first use."""
    return sympy.cse(list(expressions), symbols=sympy.numbered_symbols("x"), order="canonical")


def _function_source(
    name: str, outputs: Sequence[Tuple[str, sympy.Expr]], parameters: Sequence[Parameter], doc: str, on_floats: bool = False
) -> str:
    """One formula function: named intermediates, then the outputs, each a count-shaped tensor (or a float)."""
    names: Dict[sympy.Symbol, str] = dict(_COUNT_VARIABLES)
    names.update({p.symbol: p.name for p in parameters})
    replacements, reduced = _shared([expression for _, expression in outputs])
    printer = FloatPrinter(names) if on_floats else TorchPrinter(names, set(COUNTS))
    lines = []
    for symbol, expression in replacements:
        names[symbol] = str(symbol)
        text = printer.print(expression)
        if printer.is_tensor(expression):
            printer.tensor_symbols.add(symbol)
        lines.append(f"    {symbol} = {text}")
    results = []
    for (output, _), expression in zip(outputs, reduced):
        if on_floats:
            text = printer.print(expression)
        elif expression == 0:
            text = "torch.zeros_like(tp)"
        else:
            text = printer.print(expression)
            if not printer.is_tensor(expression):
                text = f"torch.full_like(tp, {text})"
        lines.append(f"    {output} = {text}")
        results.append(output)
    count_type = "float" if on_floats else "Tensor"
    arguments = ", ".join([f"{count}: {count_type}" for count in ("tp", "fp", "fn", "tn")] + ["eps: float"] + [f"{p.name}: float" for p in parameters])
    returns = count_type if len(results) == 1 else f"Tuple[{', '.join([count_type] * len(results))}]"
    body = "\n".join(lines)
    return f'def {name}({arguments}) -> {returns}:\n    """{doc}"""\n{body}\n    return {", ".join(results)}\n'


@dataclass(frozen=True)
class GuardedDerivation:
    """The value and the per-sample weights with guards in place, and the singularities that put them there."""

    value: sympy.Expr
    positive: sympy.Expr
    negative: sympy.Expr
    singularities: Tuple[Singularity, ...]


def guarded(derivation: Derivation) -> GuardedDerivation:
    """Guards for the value and for the weights dTP - dFN (positive sample) and dFP - dTN (negative sample)."""
    forms: Dict[sympy.Expr, sympy.Expr] = {}
    value, found = guard(derivation.value, forms)
    weights = []
    for weight in per_sample_weights(derivation):
        guarded_weight, more = guard(weight, forms)
        weights.append(guarded_weight)
        found += more
    unique = {f"{s.kind}:{sympy.srepr(s.expression)}": s for s in found}
    return GuardedDerivation(value, weights[0], weights[1], tuple(unique.values()))


def _runtime_source() -> str:
    """counts.py without its module docstring and imports: the shared runtime each emitted file carries."""
    text = (Path(__file__).parent / "counts.py").read_text(encoding="utf-8")
    return text[text.index("\ndef ") + 1 :].rstrip() + "\n"


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


def _option_defaults(options: LossOptions, parameters: Sequence[Parameter]) -> List[Tuple[str, str, str]]:
    """(name, annotation, default literal) for every constructor argument."""
    weights = "None" if options.class_weights is None else repr(list(options.class_weights))
    rows = [
        ("task", "str", repr(options.task)),
        ("from_logits", "bool", repr(options.from_logits)),
        ("approximation", "str", repr(options.approximation)),
        ("steepness", "float", repr(options.steepness)),
        ("threshold", "float", repr(options.threshold)),
        ("width", "float", repr(options.width)),
        ("average", "str", repr(options.average)),
        ("multidim_average", "str", repr(options.multidim_average)),
        ("ignore_index", "Optional[int]", repr(options.ignore_index)),
        ("include_background", "bool", repr(options.include_background)),
        ("class_weights", "Optional[List[float]]", weights),
        ("zero_division", "Optional[float]", repr(options.zero_division)),
        ("sync", "Optional[str]", repr(options.sync)),
        ("count_momentum", "Optional[float]", repr(options.count_momentum)),
        ("eps", "float", repr(options.eps)),
        ("direction", "str", repr(options.direction)),
        ("validate_args", "bool", repr(options.validate_args)),
        ("ce_weight", "float", repr(options.ce_weight)),
    ]
    rows += [(p.name, "float", repr(float(p.default))) for p in parameters]
    return rows


def emit_module(derivation: Derivation, name: str, options: LossOptions) -> str:
    """The complete source of the loss module file; deterministic for the same input."""
    if options.direction not in ("maximize", "minimize"):
        raise OptionError("emit_module needs a resolved direction ('maximize' or 'minimize')")
    loss_class = class_name(name)
    parameters = derivation.definition.parameters
    safe = guarded(derivation)
    value_function = _function_source("metric_value", [("value", safe.value)], parameters, "The soft metric from the soft counts.")
    both_function = _function_source(
        "metric_value_and_weights",
        [("value", safe.value), ("positive", safe.positive), ("negative", safe.negative)],
        parameters,
        "The metric and the per-sample weights dTP - dFN (positive) and dFP - dTN (negative), sharing subexpressions.",
    )
    floats_function = _function_source(
        "metric_value_and_weights_of_floats",
        [("value", safe.value), ("positive", safe.positive), ("negative", safe.negative)],
        parameters,
        "metric_value_and_weights on Python floats, for counts that are single numbers.",
        on_floats=True,
    )
    maximize = options.direction == "maximize"
    loss_text = f"1 - {name}" if maximize else name
    positive, negative = per_sample_weights(derivation)
    partial_lines = "\n".join(
        _wrap(f"d {name} / d {count} = {sympy.sstr(partial)}", "    ") for count, partial in zip(COUNT_NAMES, derivation.partials)
    )
    singular_lines = "\n".join(_wrap(f"- {s.describe()}", "    ") for s in safe.singularities) or "    none"
    parameter_lines = "\n".join(f"    {p.name} = {float(p.default)!r}, domain {p.domain_text()}" for p in parameters) or "    none"
    docstring = _doc_text(
        f"{loss_class}: {name} as a loss, compiled by metricc {__version__}.\n\n"
        f"Metric ({options.direction}d; the loss is {loss_text}):\n\n"
        f"{_wrap(f'{name} = {sympy.sstr(derivation.value)}', '    ')}\n\n"
        f"Partial derivatives:\n\n"
        f"{partial_lines}\n\n"
        f"Per-sample weights d {name} / d a_i (the backward pass uses these, not autograd through the formula):\n\n"
        f"{_wrap(f'positive, y_i = 1: dTP - dFN = {sympy.sstr(positive)}', '    ')}\n"
        f"{_wrap(f'negative, y_i = 0: dFP - dTN = {sympy.sstr(negative)}', '    ')}\n\n"
        f"Metric parameters:\n{parameter_lines}\n\n"
        f"Singular points and their guards (eps = {options.eps!r} by default):\n{singular_lines}\n\n"
        "Soft counts: a = A(p), TP = sum a y, FP = sum a (1 - y), FN = sum (1 - a) y, TN = sum (1 - a)(1 - y).\n"
        "ce_weight > 0 adds ce_weight * BCE (binary, multilabel) or CE (multiclass) of the same inputs (autograd).\n"
        "This file imports only torch (and Python's math) and is generated: edit the metric, not this file."
    )
    signature = ",\n".join(f"        {n}: {annotation} = {default}" for n, annotation, default in _option_defaults(options, parameters))
    parameter_checks = "".join(_parameter_check(p) for p in parameters)
    parameter_assignments = "".join(f"        self.{p.name} = float({p.name})\n" for p in parameters)
    parameter_arguments = "".join(f", self.{p.name}" for p in parameters)
    return _MODULE_TEMPLATE.format(
        docstring=docstring,
        runtime=_runtime_source(),
        value_function=value_function,
        both_function=both_function,
        floats_function=floats_function,
        loss_class=loss_class,
        signature=signature,
        parameter_checks=parameter_checks,
        parameter_assignments=parameter_assignments,
        parameter_arguments=parameter_arguments,
        offset="1.0" if maximize else "0.0",
    )


def _parameter_check(parameter: Parameter) -> str:
    conditions = []
    if parameter.lower != float("-inf"):
        conditions.append(f"{parameter.name} {'>' if parameter.lower_open else '>='} {parameter.lower!r}")
    if parameter.upper != float("inf"):
        conditions.append(f"{parameter.name} {'<' if parameter.upper_open else '<='} {parameter.upper!r}")
    if not conditions:
        return ""
    return (
        f"        if not ({' and '.join(conditions)}):\n"
        f'            raise ValueError(f"{parameter.name}={{{parameter.name}}} lies outside its domain {parameter.domain_text()}")\n'
    )


_MODULE_TEMPLATE = '''"""{docstring}
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor


{runtime}

def signed_clamp(x: Tensor, eps: float) -> Tensor:
    """x moved to +-eps where |x| < eps, keeping its sign (zero goes to +eps)."""
    return torch.where(x.abs() < eps, torch.where(x < 0, -eps, eps) * torch.ones_like(x), x)


def signed_clamp_float(x: float, eps: float) -> float:
    """signed_clamp of a Python float."""
    if abs(x) >= eps:
        return x
    return -eps if x < 0 else eps


def sign_float(x: float) -> float:
    """torch.sign of a Python float."""
    return 0.0 if x == 0 else math.copysign(1.0, x)


def heaviside_float(x: float) -> float:
    """torch.heaviside(x, 0.5) of a Python float."""
    return 0.5 if x == 0 else float(x > 0)


{value_function}

{both_function}

{floats_function}

_CHOICES = {{
    "task": ["binary", "multiclass", "multilabel"],
    "approximation": ["anyloss", "identity", "linear"],
    "average": ["micro", "macro", "weighted", "none", "samples"],
    "multidim_average": ["global", "samplewise"],
    "direction": ["maximize", "minimize"],
}}


class {loss_class}(torch.nn.Module):
    """The metric as a loss on (preds, target); the module docstring has the formula.

    preds: (N,) or (N, 1, *spatial) for task='binary'; (N, C, *spatial) for 'multiclass' and 'multilabel'.
    Probabilities, or logits with from_logits=True (sigmoid; softmax over C for 'multiclass').
    target: the shape of preds (0/1, one-hot or multi-hot), or class indices (N, *spatial) or (N, 1, *spatial)
    for 'multiclass'. Positions whose target is ignore_index are left out; include_background=False leaves out
    class 0. average: 'micro' pools the classes, 'macro' averages them (multiclass leaves out absent classes),
    'weighted' weighs them by support, 'none' returns one loss per class, 'samples' one metric per sample
    (multilabel). multidim_average='samplewise': counts per image, then the mean over images.
    zero_division: the metric of a class absent from both targets and predictions (TP + FP + FN < 0.5);
    None keeps the formula's own value there. sync='ddp': counts summed over torch.distributed ranks.
    count_momentum: in training mode, counts mixed with running counts as BatchNorm's statistics are.
    """

    ignore_index: Optional[int]
    zero_division: Optional[float]
    sync: Optional[str]
    count_momentum: Optional[float]

    def __init__(
        self,
{signature},
    ):
        super().__init__()
        for option, value in (("task", task), ("approximation", approximation), ("average", average),
                              ("multidim_average", multidim_average), ("direction", direction)):
            if value not in _CHOICES[option]:
                raise ValueError(f"{{option}}={{value!r}} is not one of {{_CHOICES[option]}}")
        if not (steepness > 0 and width > 0 and eps > 0 and 0 < threshold < 1):
            raise ValueError("steepness, width and eps must be positive and threshold must lie in (0, 1)")
        check_averaging(task, average, multidim_average, include_background, class_weights, zero_division, sync, count_momentum)
        if not (ce_weight >= 0.0 and ce_weight < float("inf")) or (ce_weight > 0.0 and average == "none"):
            raise ValueError(f"ce_weight={{ce_weight}} must be a finite number >= 0, and 0 when average='none'")
{parameter_checks}        self.task = task
        self.from_logits = from_logits
        self.approximation = approximation
        self.steepness = float(steepness)
        self.threshold = float(threshold)
        self.width = float(width)
        self.average = average
        self.multidim_average = multidim_average
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.zero_division = None if zero_division is None else float(zero_division)
        self.sync = sync
        self.count_momentum = None if count_momentum is None else float(count_momentum)
        self.eps = float(eps)
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.offset = 1.0 if direction == "maximize" else 0.0
        self.validate_args = validate_args
        self.ce_weight = float(ce_weight)
{parameter_assignments}        weights = torch.tensor(class_weights if class_weights is not None else [], dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.register_buffer("running_counts", torch.zeros(0), persistent=False)

    def _counts(self, preds: Tensor, target: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], float, Tensor, Optional[Tensor], List[int]]:
        """Soft counts TP, FP, FN, TN stacked, of the canonical (batch, classes, positions) layout, and what the
        backward pass needs."""
        if self.validate_args:
            validate_inputs(preds, target, self.task, self.from_logits, self.ignore_index, self.include_background)
        preds, target, mask, labels = canonical_layout(preds, target, self.task, self.ignore_index)
        values = preds.detach().to(target.dtype)
        leaf = preds
        if self.from_logits and self.task == "multiclass":
            leaf = probabilities(preds.to(target.dtype), self.task, self.from_logits)
            values = leaf.detach()
        if not self.include_background:
            leaf, values, target = leaf[:, 1:], values[:, 1:], target[:, 1:]
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, 1:]
        dims = count_dims(self.task, self.average, self.multidim_average)
        sigmoid_logits = self.from_logits and self.task != "multiclass"
        with_slope = leaf.requires_grad and torch.is_grad_enabled()
        counts, slope, scale = soft_counts(
            values, target, mask, dims, sigmoid_logits, self.approximation, self.steepness, self.threshold, self.width, with_slope
        )
        return counts, target, labels, slope, scale, leaf, mask, dims

    def _pooled(self, counts: Tensor, dims: List[int], running: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """The counts the formula sees (summed over ranks, mixed with running counts) and their derivative by this batch's."""
        if (self.sync is None or 0 not in dims) and (self.count_momentum is None or not running):
            return counts[0], counts[1], counts[2], counts[3], 1.0
        if self.sync is not None and 0 in dims:
            counts = all_reduce_sum(counts)
        scale = 1.0
        momentum = self.count_momentum
        if momentum is not None and running:
            counts, scale = running_counts(counts, self.running_counts, momentum)
            self.running_counts = counts.detach()
        return counts[0], counts[1], counts[2], counts[3], scale

    def _average(self, value: Tensor, tp: Tensor, fp: Tensor, fn: Tensor, dims: List[int]) -> Tensor:
        """The per-count metric values averaged over classes and rows as configured; rows summed over ranks."""
        if self.average == "micro" and self.sync is None:
            return value.mean()  # one pooled count per row, each row counts: the weights below are all one
        class_weights: Optional[Tensor] = None
        if self.class_weights.numel() > 0:
            if self.class_weights.numel() != tp.shape[1]:
                raise ValueError(
                    f"class_weights has {{self.class_weights.numel()}} entries for {{tp.shape[1]}} scored classes"
                    " (include_background=False leaves out class 0)"
                )
            class_weights = self.class_weights
        weights = average_weights(tp, fp, fn, self.task, self.average, class_weights)
        total, rows = row_sums(value, weights, self.average)
        if self.sync is not None and 0 not in dims:
            total = total + (all_reduce_sum(total) - total.detach())
            rows = all_reduce_sum(rows)
        zero_division = self.zero_division
        return mean_over_rows(total, rows, 0.0 if zero_division is None else zero_division)

    @torch.jit.unused
    def _loss_of_floats(
        self, counts: Tensor, target: Tensor, slope: Optional[Tensor], scale: float, mask: Optional[Tensor], leaf: Tensor
    ) -> Optional[Tensor]:
        """The loss of one count (binary, or micro-averaged) with the formula on Python floats; None where the
        floats fail (0/0, an overflow) and the tensor formula is to decide."""
        tp, fp, fn, tn = counts.reshape(4).tolist()
        try:
            value, positive, negative = metric_value_and_weights_of_floats(tp, fp, fn, tn, self.eps{parameter_arguments})
        except (ArithmeticError, ValueError):
            return None
        if not all(math.isfinite(x) for x in (value, positive, negative)):
            return None
        if self.zero_division is not None and tp + fp + fn < 0.5:
            value, positive, negative = self.zero_division, 0.0, 0.0
        return loss_from_floats(self.sign * value + self.offset, self.sign * positive, self.sign * negative, target, slope, scale, mask, leaf)

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """The loss: {{1 - metric or metric}}, averaged as configured, with the closed-form gradient."""
        counts, counted, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
        loss: Optional[Tensor] = None
        one_count = self.average == "micro" and self.sync is None and (self.count_momentum is None or not self.training)
        if one_count and counts_fit_floats(counts, leaf):
            loss = self._loss_of_floats(counts, counted, slope, scale, mask, leaf)
        if loss is None:
            loss = self._loss_of_tensors(counts, counted, labels, slope, scale, leaf, mask, dims)
        if self.ce_weight > 0.0:
            loss = loss + self.ce_weight * cross_entropy(preds, target, self.task, self.from_logits, self.ignore_index)
        return loss

    def _loss_of_tensors(
        self, counts: Tensor, counted: Tensor, labels: Optional[Tensor], slope: Optional[Tensor], scale: float, leaf: Tensor,
        mask: Optional[Tensor], dims: List[int],
    ) -> Tensor:
        """The loss with the formula on count tensors, pooled across ranks and steps as configured."""
        tp, fp, fn, tn, count_scale = self._pooled(counts, dims, self.training)
        zero_division = self.zero_division
        if not (leaf.requires_grad and torch.is_grad_enabled()):
            value = metric_value(tp, fp, fn, tn, self.eps{parameter_arguments})
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
        else:
            value, positive, negative = metric_value_and_weights(tp, fp, fn, tn, self.eps{parameter_arguments})
            if zero_division is not None:
                value, positive, negative = fill_absent(value, positive, negative, tp, fp, fn, zero_division)
            first_class = 0 if self.include_background else 1
            value = attach_gradient(value, positive, negative, counted, labels, first_class, slope, scale * count_scale, mask, leaf, dims)
        return self.sign * self._average(value, tp, fp, fn, dims) + self.offset

    @torch.jit.export
    def metric(self, preds: Tensor, target: Tensor) -> Tensor:
        """The soft metric of this batch (no gradient, no running counts), averaged like the loss."""
        with torch.no_grad():
            counts, target, labels, slope, scale, leaf, mask, dims = self._counts(preds, target)
            tp, fp, fn, tn, count_scale = self._pooled(counts, dims, False)
            value = metric_value(tp, fp, fn, tn, self.eps{parameter_arguments})
            zero_division = self.zero_division
            if zero_division is not None:
                value = value.masked_fill(absent_counts(tp, fp, fn), zero_division)
            return self._average(value, tp, fp, fn, dims)

    @torch.jit.export
    def metric_of_counts(self, tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
        """The guarded formula on count tensors of any one shape, element-wise: no averaging, no zero_division."""
        return metric_value(tp, fp, fn, tn, self.eps{parameter_arguments})

    @torch.jit.export
    def reset_running_counts(self) -> None:
        """Forget the running counts (count_momentum): the next training step starts from its own batch."""
        self.running_counts = self.running_counts.new_zeros([0])
'''
