"""The one table of loss options: the compiler's LossOptions, the CLI flags, the emitted defaults and the
constructor's checks all come from OPTIONS and `validate_options`. Pure Python: the CLI reads it without torch."""

import difflib
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple


class InvalidOption(ValueError):
    """A loss option has a value it cannot take; the message names the option and what it accepts."""


class Option(NamedTuple):
    """One loss option: its name, TorchScript annotation, default, help text, accepted values and CLI reader."""

    name: str
    annotation: str
    default: Any
    help: str
    choices: Tuple[str, ...] = ()
    check: Optional[Callable[[str, Any], Any]] = None
    flag_type: Optional[Callable[[str], Any]] = None


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOption(f"{name}={value!r} must be True or False")
    return value


def _scalar(value: Any) -> Any:
    """A numpy number, or a 0-d tensor or array (class weights often come as a tensor), as the Python number it
    holds; anything else as it is. Duck-typed: this module imports neither torch nor numpy."""
    if not isinstance(value, (int, float)) and getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    """An int or a float, not a bool (True is an int to Python, never a number of ours)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidOption(f"{name}={value!r} must be a finite number")
    return float(value)


def _positive(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise InvalidOption(f"{name}={value!r} must be a positive finite number")
    return float(value)


def smallest_eps(double: bool) -> float:
    """The smallest eps the guards accept for float64 counts (double) or float32 counts (from float16, bfloat16 or
    float32 preds): the fourth root of the dtype's smallest normal number (2**-1022, 2**-126), rounded up. A guarded
    partial derivative divides by up to eps**2, and this leaves room for counts up to 1/eps**2 in its numerator
    before it overflows to inf, whose product with a zero weight is NaN."""
    return 1.3e-77 if double else 3.3e-10


def eps_problem(eps: float, double: bool) -> str:
    """Why eps is too small for float64 (double) or float32 counts; scriptable, for the check at forward time."""
    return (
        "eps=" + str(eps) + " is below " + str(smallest_eps(double)) + ", the smallest eps for "
        + ("float64" if double else "float32") + " counts: a smaller one rounds to 0 in them or overflows the guarded "
        "partial derivatives to inf and NaN. Float16, bfloat16 and float32 preds are counted in float32 (eps >= "
        + str(smallest_eps(False)) + "), float64 preds in float64 (eps >= " + str(smallest_eps(True)) + ")"
    )


def _eps(name: str, value: Any) -> float:
    value = _positive(name, value)
    if value < smallest_eps(True):
        raise InvalidOption(eps_problem(value, True))
    return value


def _threshold(name: str, value: Any) -> float:
    if not _is_number(value) or not 0.0 < value < 1.0:
        raise InvalidOption(f"{name}={value!r} must lie strictly between 0 and 1")
    return float(value)


def _index(name: str, value: Any) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidOption(f"{name}={value!r} must be an integer or None")
    return value


def _class_weights(name: str, value: Any) -> Optional[Tuple[float, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidOption(f"{name}={value!r} must be a sequence of positive numbers, one per scored class")
    weights = tuple(_positive(f"{name} entry", _scalar(w)) for w in value)
    if not weights:
        raise InvalidOption(f"{name} must not be empty")
    return weights


def _zero_division(name: str, value: Any) -> Optional[float]:
    return None if value is None else _number(name, value)


def _momentum(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if not _is_number(value) or not 0.0 < value <= 1.0:
        raise InvalidOption(f"{name}={value!r} must lie in (0, 1] (the weight of the current batch) or be None")
    return float(value)


def _ce_weight(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise InvalidOption(f"{name}={value!r} must be a finite number >= 0 (0 turns the cross-entropy term off)")
    return float(value)


def float_list(text: str) -> Tuple[float, ...]:
    """'1,2.5,3' -> (1.0, 2.5, 3.0): how the CLI reads --class-weights."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InvalidOption(f"expected comma-separated numbers such as 1,2,0.5, got {text!r}") from None


DIRECTION_SPELLINGS = {"maximise": "maximize", "minimise": "minimize", "max": "maximize", "min": "minimize"}

OPTIONS: Tuple[Option, ...] = (
    Option("task", "str", "binary", "binary, multiclass (softmax over classes) or multilabel", ("binary", "multiclass", "multilabel")),
    Option("from_logits", "bool", False, "preds are logits (sigmoid, or softmax for multiclass)", check=_flag),
    Option(
        "approximation", "str", "auto", "how a prediction becomes a soft 0/1 (auto: anyloss, identity for multiclass)",
        ("auto", "anyloss", "identity", "linear"),
    ),
    Option("steepness", "float", 73.0, "L of the anyloss approximation", check=_positive, flag_type=float),
    Option("threshold", "float", 0.5, "tau, the decision threshold of the approximation", check=_threshold, flag_type=float),
    Option("width", "float", 0.2, "width of the linear approximation's ramp", check=_positive, flag_type=float),
    Option("average", "str", "micro", "how per-class metrics combine, in torchmetrics' words", ("micro", "macro", "weighted", "none", "samples")),
    Option("multidim_average", "str", "global", "samplewise: counts per image, then the mean over images", ("global", "samplewise")),
    Option("ignore_index", "Optional[int]", None, "target value whose positions are left out", check=_index, flag_type=int),
    Option("include_background", "bool", True, "score class 0 (MONAI's meaning)", check=_flag),
    Option(
        "class_weights", "Optional[List[float]]", None, "per-class weights for macro or weighted averaging",
        check=_class_weights, flag_type=float_list,
    ),
    Option("zero_division", "Optional[float]", None, "the metric of a class absent from targets and predictions", check=_zero_division, flag_type=float),
    Option("sync", "Optional[str]", None, "ddp: sum the counts over torch.distributed ranks", ("ddp",)),
    Option("count_momentum", "Optional[float]", None, "running counts: (1 - M) history + M batch, as BatchNorm", check=_momentum, flag_type=float),
    Option("eps", "float", 1e-7, f"guard for vanishing denominators (>= {smallest_eps(False):g} for float32 counts)", check=_eps, flag_type=float),
    Option("direction", "str", "auto", "maximize or minimize the metric (auto: from the library or the partials)", ("auto", "maximize", "minimize")),
    Option("validate_args", "bool", True, "check the inputs' shapes and values on every call", check=_flag),
    Option("ce_weight", "float", 0.0, "add CE_WEIGHT * BCE (or CE for multiclass) to the loss (0: off)", check=_ce_weight, flag_type=float),
)
OPTION_NAMES: Tuple[str, ...] = tuple(option.name for option in OPTIONS)
DEFAULTS: Dict[str, Any] = {option.name: option.default for option in OPTIONS}


def default_approximation(task: str) -> str:
    """anyloss (the AnyLoss paper's A) for sigmoid outputs; identity for softmax outputs.

    A fresh multiclass model puts about 1/C on every class, far below the 0.5 threshold, where the anyloss
    and linear approximations are flat: the loss has no gradient and the model never trains
    (examples/RESULTS.md: macro-F1 0.03 with anyloss, 0.92 with identity on digits).
    """
    return "identity" if task == "multiclass" else "anyloss"


def validate_options(values: Dict[str, Any]) -> Dict[str, Any]:
    """Every option checked and normalised (defaults filled in, 'auto' approximation resolved); raises
    InvalidOption naming the first unknown or invalid one."""
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise InvalidOption(f"unknown option(s) {', '.join(unknown)}; valid options are {', '.join(OPTION_NAMES)}")
    checked: Dict[str, Any] = {}
    for option in OPTIONS:
        value = _scalar(values.get(option.name, option.default))
        if option.name == "direction" and isinstance(value, str):
            value = DIRECTION_SPELLINGS.get(value, value)
        if option.choices and not (value is None and option.default is None):
            if value not in option.choices:
                raise InvalidOption(f"{option.name}={value!r} is not one of {', '.join(map(repr, option.choices))}")
        if option.check is not None:
            value = option.check(option.name, value)
        checked[option.name] = value
    if checked["approximation"] == "auto":
        checked["approximation"] = default_approximation(checked["task"])
    _check_combinations(checked)
    return checked


def _check_combinations(options: Dict[str, Any]) -> None:
    """Options that only make sense together: averaging against the task and the counts' layout."""
    task, average = options["task"], options["average"]
    if average == "samples" and task != "multilabel":
        raise InvalidOption(f"average='samples' needs task='multilabel' (one metric per sample over its labels), got task={task!r}")
    if not options["include_background"] and task == "binary":
        raise InvalidOption("include_background=False needs task='multiclass' or 'multilabel': a binary input has one class")
    if options["class_weights"] is not None and (task == "binary" or average not in ("macro", "weighted")):
        raise InvalidOption(f"class_weights weigh classes in average='macro' or 'weighted', not average={average!r} with task={task!r}")
    if options["count_momentum"] is not None and (options["multidim_average"] != "global" or average == "samples"):
        raise InvalidOption(
            "count_momentum needs counts pooled over the batch: multidim_average='global' and an average other than 'samples'"
        )
    if options["ce_weight"] > 0 and average == "none":
        raise InvalidOption("ce_weight > 0 needs a scalar loss: average='none' returns one loss per class")


def matrix_option_problem(metric: str, options: Dict[str, Any]) -> Optional[str]:
    """Why options do not apply to a metric of the whole confusion matrix, or None."""
    if options["task"] != "multiclass":
        return (
            f"{metric} is compiled as a metric of the whole C x C confusion matrix, which needs task='multiclass', "
            f"not task={options['task']!r} (compile it with that task for its two-class form)"
        )
    for name, default in (("average", "micro"), ("class_weights", None), ("zero_division", None), ("include_background", True)):
        if options[name] != default:
            return (
                f"{name}={options[name]!r} does not apply to {metric}, a metric of the whole C x C confusion matrix: it "
                "has no per-class values to average, weigh or leave out; for per-class values use a formula of TP, FP, "
                "FN and TN (for a library metric, its one-vs-rest form, such as mcc_ovr)"
            )
    return None


def parameter_problem(name: str, value: Any, lower: float, upper: float, lower_open: bool, upper_open: bool) -> Optional[str]:
    """Why a metric parameter's value is not accepted, or None: a finite number inside its declared domain."""
    value = _scalar(value)
    if not _is_number(value) or not math.isfinite(value):
        return f"{name}={value!r} must be a finite number"
    above = value > lower if lower_open else value >= lower
    below = value < upper if upper_open else value <= upper
    if above and below:
        return None
    return f"{name}={value:g} lies outside its domain {domain_text(lower, upper, lower_open, upper_open)}"


def domain_text(lower: float, upper: float, lower_open: bool, upper_open: bool) -> str:
    """(0, inf), [0, 1], ...: a parameter's domain as the metric language writes it."""
    left, right = "(" if lower_open else "[", ")" if upper_open else "]"
    return f"{left}{_bound(lower)}, {_bound(upper)}{right}"


def _bound(value: float) -> str:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else f"{value:g}"



def unknown_arguments_problem(owner: str, unknown: Sequence[str], parameter_names: Sequence[str]) -> str:
    """Why keyword arguments that are neither loss options nor metric parameters are refused: each one with the
    closest accepted name, then every accepted name."""
    accepted = list(OPTION_NAMES) + list(parameter_names)
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    parameters = f"its metric parameters {', '.join(parameter_names)}" if parameter_names else "no metric parameters (it has none)"
    return f"{owner} got unknown keyword argument(s) {', '.join(named)}; it accepts the loss options {', '.join(OPTION_NAMES)} and {parameters}"
