"""The Python API, which metricc re-exports: loss, emit, explain, gradient and threshold_curve. Each imports the
stages it needs when called, so that importing metricc stays cheap."""

from __future__ import annotations

from .errors import OptionError


def emit(expression: str, /, name: str | None = None, standalone: bool = False, **arguments) -> str:
    """The source of the loss module file for the metric: over metricc's runtime, or, with standalone=True,
    with the runtime inlined so that the file imports only torch. Keyword arguments are loss options and metric
    parameters (`emit("fbeta", beta=2)`), both the emitted class's constructor defaults."""
    if standalone:
        from .compiler import compile_metric

        return compile_metric(expression, name, standalone=True, **arguments).source
    from .arguments import split_arguments
    from .cache import compiled_source

    options, parameters = split_arguments(arguments)
    return compiled_source(expression, name, options, parameters)[2]


def explain(expression: str, /, task: str | None = None, **parameters):
    """The `Explanation` that `metricc explain METRIC --task TASK` prints: direction, monotonicity, range, singular
    points and guards, partials, per-sample gradient weights (or G for a matrix metric) and operation counts;
    `.format("text" | "latex" | "json" | "markdown")`, `.to_json()`. task=None explains the metric's own form (the
    matrix form only for a metric that has no four-count form, such as weighted kappa); 'multiclass' the matrix
    form of a metric that has one; another task the four-count form. Keyword arguments set the metric's
    parameters (`explain("fbeta", beta=2)`): the values it is sampled at."""
    from .compiler import checked_parameter_defaults
    from .explanation import explain as _explain
    from .runtime.options import OPTION_NAMES

    options = sorted(set(parameters) & set(OPTION_NAMES))
    if options:
        raise OptionError(
            f"metricc.explain takes the task and the metric's parameters, not loss options ({', '.join(options)}): it "
            "explains the formula, whatever the loss does with it"
        )
    _check_task(task)
    return _explain(expression, task, checked_parameter_defaults(expression, None, task, parameters))


def gradient(expression: str, task: str | None = None):
    """The SymPy partials of the metric, keyed "TP", "FP", "FN", "TN"; for a metric of the whole confusion matrix
    only (qwk), or with task="multiclass" for one with a matrix form, keyed by its aggregates ("SUM", "TRACE", ...),
    as `metricc grad` shows them. task="binary" gives every metric's four-count (two-class) form."""
    from .compiler import gradient as _gradient

    _check_task(task)
    return _gradient(expression, task)


def _check_task(task) -> None:
    """explain's and gradient's task: the form a metric is read in, None for its own."""
    if task not in (None, "binary", "multiclass", "multilabel"):
        raise OptionError(f"task={task!r} is not one of None, 'binary', 'multiclass', 'multilabel'")


def loss(expression: str, /, name: str | None = None, constraints=None, **arguments):
    """A `torch.nn.Module` loss for the metric, built from the same source `emit` returns. Keyword arguments are
    loss options (compiled in as the class's defaults) and the metric's parameters (`loss("fbeta", beta=2)`, given
    to the constructor); one outside its domain raises ParameterError, any other name OptionError.
    constraints: texts such as ["precision >= 0.9"]: a `ConstrainedLoss`, the Lagrangian of the metric under them,
    whose multipliers move by `multiplier_step` per training step; unless given, approximation='identity' and
    ce_weight=1.0 there (docs/constraints.md)."""
    from .arguments import checked_parameters, split_arguments
    from .recipe import loss_class

    if constraints is not None:
        from .constrained import ConstrainedLoss

        return ConstrainedLoss(expression, constraints, name=name, **arguments)
    if "multiplier_step" in arguments:
        raise OptionError("multiplier_step is the step of the constraints' multipliers: give constraints=[...] with it")
    options, parameters = split_arguments(arguments)
    module_class = loss_class(expression, name, options)
    return module_class(**checked_parameters(module_class.metric_name, module_class.metric_parameters, parameters))


def threshold_curve(metric: str, scores, target, /, constraints=(), **options):
    """The hard metric at every distinct decision threshold of `scores` (predict positive iff score > t), exactly.

    One sort and cumulative sums give the counts at every cut; the compiled formula (`metric_of_counts`, the
    guarded formula the loss uses) evaluates them all at once, so a cut where the formula is undefined gets the
    guarded value (precision with nothing predicted positive is 0) and a non-finite value raises ThresholdError.
    scores: probabilities, or logits with from_logits=True (thresholds are then logits); target: 0/1 of the
    same shape. task='multilabel' takes (samples, labels) and returns one curve per label (`ThresholdCurves`);
    otherwise every score is pooled into one `ThresholdCurve` with .thresholds (ascending), .values,
    .best_threshold (the middle of its gap between adjacent distinct scores, so `scores > best_threshold`
    reproduces .best_value), .best_value, .value_at(t) and .plot(path). The best is the arg-max (arg-min for a
    metric to minimise), the lowest threshold among ties. Other options (eps, direction) and the metric's
    parameters (`threshold_curve("fbeta", scores, target, beta=2)`) go to `metricc.loss`; the loss options that do
    not change the formula (approximation, average, ignore_index, zero_division, ...) raise OptionError.
    constraints: texts such as "precision >= 0.9" or "FP / (FP + TN) <= 0.01" (any metric of the language, >= or
    <= a number; docs/constraints.md): the best is then the best cut among those where every constraint holds
    (.feasible, per cut; .constraint_values, each constraint's metric at every cut; .best_constraint_values), per
    label for multi-label. Where no cut meets them all, InfeasibleConstraintError (a ThresholdError) names each
    constraint and the best value it reaches on these scores; its .curve is the unconstrained curve.
    NaN or infinite scores, a target that is not 0/1 or has one class, and empty inputs raise ThresholdError.
    """
    from .threshold import threshold_curve as _threshold_curve

    return _threshold_curve(metric, scores, target, constraints, **options)
