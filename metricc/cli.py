"""The `metricc` command: compile, grad, explain, list, generate. Symbolic commands never import torch."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import MetricError, OptionError, ParameterError
from .runtime.options import DIRECTION_SPELLINGS, OPTION_NAMES, OPTIONS, InvalidOption

FORMATS = ("text", "latex", "json", "markdown")

EXAMPLES = """examples:
  metricc demo                                      compile f1, show its gradient, train a small model
  metricc compile f1 -o generated/f1.py            a library metric, by name
  metricc compile "2*TP/(2*TP+FP+FN)" --name f1 -o f1.py
  metricc compile -f metric.txt --name my_metric    a multi-line metric from a file
  metricc compile f1 --standalone -o f1.py          the runtime inlined: the file imports only torch
  metricc compile fbeta --param beta=2 -o f2.py     a metric parameter's value: the emitted default
  metricc grad mcc                                  the four partial derivatives
  metricc grad "TP/(TP+FP)" --format latex
  metricc explain mcc                               direction, monotonicity, range, singular points, ...
  metricc explain f1 --format json                  the same as JSON (schema: docs/explain.md)
  metricc explain f1 --plot f1.png --counts 20,10,10,60
  metricc threshold f1 scores.csv --plot f1.png    best threshold of score,target columns
  metricc threshold fbeta scores.csv --param beta=2
  metricc threshold recall scores.csv --constraint "precision >= 0.9"   recall at precision >= 0.9
  metricc threshold mcc val.csv --score-column prob --target-column label --delimiter ";"
  metricc list                                      the metric library
  metricc list --format json                        name, aliases, formula, direction, range, forms of each
  metricc generate generated/                       regenerate the committed library modules
"""


def _read_expression(args: argparse.Namespace) -> str:
    if args.file is not None:
        if args.expression is not None:
            raise MetricError("give the metric either as EXPR or with -f FILE, not both")
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise MetricError(f"cannot read metric file {args.file}: {error}") from None
    if args.expression is None:
        raise MetricError("no metric given: pass EXPR (a formula or a library name) or -f FILE")
    return args.expression


def _add_expression(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", nargs="?", metavar="EXPR", help='a formula such as "2*TP/(2*TP+FP+FN)" or a library name such as f1')
    parser.add_argument("-f", "--file", help="read the metric from a file (let-bindings, params and comments allowed)")


def _add_parameters(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help=f"a metric parameter's value, such as --param beta=2 for fbeta ({meaning}); repeat it for each parameter",
    )


def _parameters(args: argparse.Namespace, expression: str, task: Optional[str]) -> dict:
    """The --param flags as {name: value}, each a parameter of the metric inside its domain; errors name the flag."""
    given = {}
    for text in args.param:
        name, equals, value = (part.strip() for part in text.partition("="))
        if not equals or not name.isidentifier():
            raise OptionError(f"--param {text!r} is not NAME=VALUE: write it as --param beta=2")
        if name in given:
            raise OptionError(f"--param {name} is given twice: give each parameter once")
        try:
            given[name] = float(value)
        except ValueError:
            raise OptionError(f"--param {name}={value}: {value!r} is not a number") from None
    if not given:
        return {}
    from .compiler import resolve
    from .arguments import checked_parameters, parameter_domains

    entry, derivation = resolve(expression, task or "binary")
    domains = parameter_domains(derivation.definition.parameters)
    metric = getattr(args, "name", None) or (entry.name if entry else "metric")
    for name in given:
        if name not in domains:
            accepted = f"its parameters are {', '.join(domains)}" if domains else "it has none"
            raise OptionError(f"--param {name}: {metric} has no parameter {name!r} ({accepted})")
    for name, value in given.items():
        try:
            checked_parameters(metric, domains, {name: value})
        except ParameterError as error:
            raise ParameterError(f"--param {name}={value:g}: {error}") from None
    return given


def _add_loss_options(parser: argparse.ArgumentParser) -> None:
    """One flag per row of the options table (metricc.runtime.options.OPTIONS), with its choices and help."""
    group = parser.add_argument_group("loss options (constructor defaults of the emitted module)")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        text = f"{option.help} (default {option.default})"
        if option.annotation == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif option.choices:
            choices = option.choices + tuple(DIRECTION_SPELLINGS) if option.name == "direction" else option.choices
            group.add_argument(flag, choices=choices, help=text)
        else:
            group.add_argument(flag, type=_flag_reader(option.flag_type), metavar=option.name.upper(), help=text)


def _flag_reader(read):
    """The table's reader of a flag's text, with its error shown by argparse as a usage error."""

    def reader(text: str):
        try:
            return read(text)
        except (InvalidOption, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    reader.__name__ = getattr(read, "__name__", "value")
    return reader


def _loss_options(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not None}


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (json: see docs/explain.md)")
    parser.add_argument(
        "--task", choices=("binary", "multiclass", "multilabel"),
        help="multiclass: the matrix form of a metric that has one; binary, multilabel: the four-count form",
    )


def command_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_metric

    expression, options = _read_expression(args), _loss_options(args)
    parameters = _parameters(args, expression, options.get("task"))
    compilation = compile_metric(expression, args.name, standalone=args.standalone, **options, **parameters)
    if args.output in (None, "-"):
        sys.stdout.write(compilation.source)
    else:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(compilation.source, encoding="utf-8")
        print(f"wrote {output} ({compilation.name}: {compilation.options.direction}, class {_class(compilation.name)})", file=sys.stderr)
    return 0


def _class(name: str) -> str:
    from .emitter import class_name

    return class_name(name)


def _parameter_defaults(args: argparse.Namespace) -> tuple:
    """The --param flags of grad and explain, as the defaults the report shows and samples the metric at."""
    return tuple(sorted(_parameters(args, _read_expression(args), args.task).items()))


def command_grad(args: argparse.Namespace) -> int:
    from .explanation import gradient_report

    print(gradient_report(_read_expression(args), args.task, _parameter_defaults(args)).format(args.format))
    return 0


def command_explain(args: argparse.Namespace) -> int:
    from .explanation import explain

    explanation = explain(_read_expression(args), args.task, _parameter_defaults(args))
    batch = _plotted_batch(args, explanation.kind)
    print(explanation.format(args.format))
    if args.plot:
        from .plots import plot_weights

        path = plot_weights(explanation, batch, args.plot)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _plotted_batch(args: argparse.Namespace, kind: str):
    """The rest of the batch --plot adds a sample to, from the flag of the metric's form (`_PLOT_FLAGS`)."""
    from .plots import DEFAULT_BATCH

    flag, attribute, parse_batch = _PLOT_FLAGS[kind]
    misplaced = [other for form, (other, name, _) in _PLOT_FLAGS.items() if form != kind and getattr(args, name) is not None]
    if misplaced:
        form = "four-count" if kind == "counts" else kind
        raise OptionError(f"{misplaced[0]} is for another form of metric: this one is a {form} metric, so give {flag}")
    given = getattr(args, attribute)
    return DEFAULT_BATCH[kind] if given is None else parse_batch(given)


def parse_counts(text: str) -> Tuple[float, float, float, float]:
    """'TP,FP,FN,TN' -> four nonnegative numbers."""
    values = _numbers(text.split(","))
    if len(values) != 4:
        raise OptionError(f"--counts {text!r} must be four nonnegative numbers TP,FP,FN,TN, e.g. 20,10,10,60")
    return values  # type: ignore[return-value]


def parse_matrix(text: str) -> Tuple[Tuple[float, ...], ...]:
    """'a,b;c,d' (rows: true classes) -> a square matrix of nonnegative numbers, at least 2 x 2."""
    rows = tuple(_numbers(row.split(",")) for row in text.split(";"))
    if len(rows) < 2 or any(len(row) != len(rows) for row in rows):
        raise OptionError(
            f"--matrix {text!r} must be a square confusion matrix of nonnegative numbers, rows (true classes) separated "
            "by ';' and cells by ',', at least 2 x 2, e.g. '20,5,2;5,20,5;2,5,20'"
        )
    return rows


def _numbers(parts: List[str]) -> Tuple[float, ...]:
    """Finite nonnegative numbers, or () if any part is not one."""
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        return ()
    return values if all(0 <= v < float("inf") for v in values) else ()


#: Each form's --plot flag for the rest of the batch: (flag, its argparse name, its parser).
_PLOT_FLAGS = {"counts": ("--counts", "counts", parse_counts), "matrix": ("--matrix", "matrix", parse_matrix)}


def command_list(args: argparse.Namespace) -> int:
    from .library import bound_text, default_library

    entries = [default_library().entry(name) for name in default_library().names()]
    if args.format == "json":
        print(json.dumps({"schema_version": 1, "command": "list", "metrics": [entry.to_dict() for entry in entries]}, indent=2))
        return 0
    rows = [("name", "aliases", "better", "range", "formula")]
    for entry in entries:
        low, high = (bound_text(value) for value in entry.range)
        better = "higher" if entry.higher_is_better else "lower"
        rows.append((entry.name, ", ".join(entry.aliases), better, f"[{low}, {high}]", entry.listed_formula))
    if args.format == "markdown":
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        for name, aliases, better, bounds, formula in rows[1:]:
            print(f"| `{name}` | {aliases} | {better} | {bounds} | `{formula}` |")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4])
    return 0


def command_generate(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    from .compiler import generated_sources

    sources = generated_sources()
    for stale in sorted(set(p.name for p in directory.glob("*.py")) - set(sources)):
        (directory / stale).unlink()
    for file_name, source in sources.items():
        (directory / file_name).write_text(source, encoding="utf-8")
    print(f"wrote {len(sources)} loss modules to {directory}", file=sys.stderr)
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from .demo import run

    run(args.metric, args.seed, args.epochs)
    return 0


def _delimiter(text: str) -> str:
    """--delimiter: one character; 'tab' or a typed backslash-t for a tab."""
    character = "\t" if text in ("tab", "\\t") else text
    if len(character) != 1 or character in "\"\r\n":
        raise argparse.ArgumentTypeError(f"{text!r}: give one character such as ; or | (tab for a tab), not a quote or a newline")
    return character


def _metric_label(args: argparse.Namespace) -> str:
    """How the output names the metric: the file's name for -f, else the expression on one line."""
    return Path(args.file).name if args.file is not None else " ".join(args.expression.split())


def threshold_text(curve) -> str:
    """The best threshold with the fewest significant digits that still lie strictly between the two distinct
    scores of its cut (six digits would print 0.3 for the cut between 0.30000001 and 0.30000002)."""
    index, distinct = curve.best_index, curve.scores.double().tolist()
    lower = distinct[index - 1] if index > 0 else float("-inf")
    higher = distinct[index] if index < len(distinct) else float("inf")
    best = curve.best_threshold
    for digits in range(1, 18):
        step = 10.0 ** (math.floor(math.log10(abs(best) or 1.0)) - digits + 1)
        for candidate in (best, math.floor(best / step) * step, math.ceil(best / step) * step):
            text = f"{candidate:.{digits}g}"
            if lower < float(text) < higher:
                return text
    return repr(curve.best_threshold)  # the cut above the highest score: the highest score itself


def command_threshold(args: argparse.Namespace) -> int:
    import dataclasses

    expression, label = _read_expression(args), _metric_label(args)
    from .scores_csv import read_scores_csv

    scores, targets = read_scores_csv(args.csv, args.score_column, args.target_column, args.delimiter)
    from .errors import ThresholdError
    from .threshold import threshold_curve  # torch: only once the file has been read

    try:
        curve = threshold_curve(
            expression, scores, targets, constraints=args.constraint, from_logits=args.from_logits, **_parameters(args, expression, "binary")
        )
    except ThresholdError as error:
        raise ThresholdError(error.cli_message) from None
    curve = dataclasses.replace(curve, metric=label)
    half = 0.0 if args.from_logits else 0.5
    at_half = "logit 0" if args.from_logits else "0.5"
    better = "higher" if curve.direction == "maximize" else "lower"
    rows = (
        ("best threshold", threshold_text(curve), "predict positive for score > threshold"),
        (f"{label} at best", f"{curve.best_value:.6g}", f"{better} is better"),
        (f"{label} at {at_half}", f"{curve.value_at(half):.6g}", ""),
        *(
            (text, f"{value:.6g}", f"holds at the best threshold; at {at_half}: {there:.6g}, {'holds' if bound.holds(there) else 'violated'}")
            for (text, value), there, bound in zip(curve.best_constraint_values.items(), curve.constraint_values_at(half).values(), curve.constraints)
        ),
    )
    width = max(len(row[0]) for row in rows)
    for row_label, value, note in rows:
        print(f"{row_label.ljust(width)}  {value.ljust(10)}  {note}".rstrip())
    feasible = f", {int(curve.feasible.sum())} meet every constraint" if curve.constraints else ""
    print(f"{len(scores)} scores, {len(curve.thresholds)} distinct thresholds{feasible}")
    if args.plot:
        curve.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metricc",
        description="Compile a confusion-matrix metric into a PyTorch loss with a symbolically derived gradient.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compile_parser = commands.add_parser("compile", help="emit a loss module file", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_expression(compile_parser)
    compile_parser.add_argument("--name", help="metric name: file, class (f1 -> F1Loss) and docstring (default: the library name, or 'metric')")
    compile_parser.add_argument("-o", "--output", help="output file (default: standard output)")
    compile_parser.add_argument(
        "--standalone", action="store_true", help="inline metricc's runtime: the file imports only torch (to deploy without metricc)"
    )
    _add_parameters(compile_parser, "the emitted class's default; the constructor still takes any value in its domain")
    _add_loss_options(compile_parser)
    compile_parser.set_defaults(run=command_compile)

    grad_parser = commands.add_parser("grad", help="show the derived partial derivatives", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_expression(grad_parser)
    _add_report_options(grad_parser)
    _add_parameters(grad_parser, "the default the report shows; the partials stay symbolic in it")
    grad_parser.set_defaults(run=command_grad)

    explain_parser = commands.add_parser(
        "explain",
        help="analyse a metric: direction, monotonicity, range, singular points, partials, operation counts",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_expression(explain_parser)
    _add_report_options(explain_parser)
    _add_parameters(explain_parser, "where the range, the sampled checks and --plot evaluate the metric")
    explain_parser.add_argument("--plot", metavar="FILE.png", help="draw the loss and per-sample gradient weight against one prediction p")
    explain_parser.add_argument(
        "--counts", metavar="TP,FP,FN,TN", help="a four-count metric's --plot: the counts of the rest of the batch (default 20,10,10,60)"
    )
    explain_parser.add_argument(
        "--matrix", metavar="ROWS", help="a matrix metric's --plot: the rest of the batch's confusion matrix, rows by ';' (default 20,5,2;5,20,5;2,5,20)"
    )
    explain_parser.set_defaults(run=command_explain)

    generate_parser = commands.add_parser("generate", help="write a loss module for every library metric (generated/)")
    generate_parser.add_argument("directory", nargs="?", default="generated")
    generate_parser.set_defaults(run=command_generate)

    demo_parser = commands.add_parser("demo", help="compile a metric, show its gradient, train a small model on built-in data")
    demo_parser.add_argument("metric", nargs="?", default="f1", help="a library metric or formula (default f1)")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--epochs", type=int, default=40)
    demo_parser.set_defaults(run=command_demo)

    threshold_parser = commands.add_parser(
        "threshold",
        help="the metric at every decision threshold of scores in a CSV: the best one and the value at 0.5",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_expression(threshold_parser)
    threshold_parser.add_argument("csv", metavar="FILE.csv", help="a UTF-8 CSV with a header and score,target columns (target 0 or 1)")
    threshold_parser.add_argument("--score-column", default="score", metavar="NAME", help="the header of the scores' column, in any case (default score)")
    threshold_parser.add_argument("--target-column", default="target", metavar="NAME", help="the header of the targets' column, in any case (default target)")
    threshold_parser.add_argument(
        "--delimiter", type=_delimiter, metavar="CHAR", help="the field delimiter, 'tab' for a tab (default: sniffed among , ; tab |)"
    )
    threshold_parser.add_argument("--from-logits", action="store_true", help="scores are logits: thresholds are logits, 0.5 becomes 0")
    threshold_parser.add_argument("--plot", metavar="FILE.png", help="draw the metric against the threshold")
    threshold_parser.add_argument(
        "--constraint", action="append", default=[], metavar="TEXT",
        help='a bound the threshold must meet, such as --constraint "precision >= 0.9" (any metric, >= or <= a number); repeat it for each',
    )
    _add_parameters(threshold_parser, "the value the metric is evaluated with at every cut")
    threshold_parser.set_defaults(run=command_threshold)

    list_parser = commands.add_parser("list", help="list the library metrics, with formulas that paste into grad and explain")
    list_parser.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text", help="json: one object per metric; markdown: docs/language.md's table"
    )
    list_parser.set_defaults(run=command_list)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: metric errors become one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MetricError as error:
        message = str(error).replace("\n", "\n  ")
        print(f"metricc: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
