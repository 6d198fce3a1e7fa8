"""The `metricc` command: compile, grad, explain, list, generate. Symbolic commands never import torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from .errors import MetricError
from .runtime.options import DIRECTION_SPELLINGS, OPTION_NAMES, OPTIONS, InvalidOption

FORMATS = ("text", "latex", "json", "markdown")

EXAMPLES = """examples:
  metricc demo                                      compile f1, show its gradient, train a small model
  metricc compile f1 -o generated/f1.py            a library metric, by name
  metricc compile "2*TP/(2*TP+FP+FN)" --name f1 -o f1.py
  metricc compile -f metric.txt --name my_metric    a multi-line metric from a file
  metricc compile f1 --standalone -o f1.py          the runtime inlined: the file imports only torch
  metricc grad mcc                                  the four partial derivatives
  metricc grad "TP/(TP+FP)" --format latex
  metricc explain mcc                               direction, monotonicity, range, singular points, ...
  metricc explain f1 --format json                  the same as JSON (schema: docs/explain.md)
  metricc explain f1 --plot f1.png --counts 20,10,10,60
  metricc threshold f1 scores.csv --plot f1.png    best threshold of score,target columns
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
    parser.add_argument("--task", choices=("binary", "multiclass"), help="multiclass: the matrix form of a metric that has one")


def command_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_metric

    compilation = compile_metric(_read_expression(args), args.name, standalone=args.standalone, **_loss_options(args))
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


def _matrix_explanation(args: argparse.Namespace, detailed: bool):
    """The matrix form's report, where the metric is one: a formula of matrix aggregates, a library metric defined
    on the whole matrix alone (weighted kappa), or any library metric with a matrix form under --task multiclass."""
    from .compiler import matrix_form

    found = matrix_form(_read_expression(args), args.task)
    if found is None:
        return None
    from .matrix_report import MatrixExplanation

    entry, derivation = found
    return MatrixExplanation(entry.name if entry else "metric", entry, derivation, detailed)


def command_grad(args: argparse.Namespace) -> int:
    matrix = _matrix_explanation(args, detailed=False)
    if matrix is not None:
        print(matrix.format(args.format))
        return 0
    from .report import format_explanation, gradient_report

    print(format_explanation(gradient_report(_read_expression(args)), args.format))
    return 0


def command_explain(args: argparse.Namespace) -> int:
    from .report import explain, format_explanation, parse_counts, plot_weights

    matrix = _matrix_explanation(args, detailed=True)
    if matrix is not None:
        print(matrix.format(args.format))
        return 0
    counts = parse_counts(args.counts)
    explanation = explain(_read_expression(args))
    print(format_explanation(explanation, args.format))
    if args.plot:
        path = plot_weights(explanation, counts, args.plot)
        print(f"wrote {path}", file=sys.stderr)
    return 0


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


def generated_sources() -> dict:
    """File name -> source for every library metric with default options, and for each one with a matrix form
    that form with task='multiclass' (<name>_multiclass.py): the contents of generated/."""
    from .compiler import compile_metric
    from .library import default_library

    library = default_library()
    sources = {}
    for name in library.names():
        sources[f"{name}.py"] = compile_metric(name).source
        if library.entry(name).matrix is not None:
            sources[f"{name}_multiclass.py"] = compile_metric(name, f"{name}_multiclass", task="multiclass").source
    return sources


def command_generate(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
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


def read_scores_csv(path: str) -> tuple:
    """(scores, targets) as float lists from a CSV with a header naming `score` and `target` columns."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise MetricError(f"cannot read {path}: {error}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise MetricError(f"{path} is empty: expected a header line with score,target columns and one row per sample")
    header = [cell.strip() for cell in rows[0]]
    missing = [name for name in ("score", "target") if name not in header]
    if missing:
        raise MetricError(f"{path}: the header has no {' or '.join(map(repr, missing))} column (found {', '.join(map(repr, header))})")
    columns = header.index("score"), header.index("target")
    scores, targets = [], []
    for row_number, row in enumerate(rows[1:], start=1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, row {row_number} (line {row_number + 1})"
        if len(row) <= max(columns):
            raise MetricError(f"{where}: {len(row)} fields, expected {len(header)} as in the header")
        score, target = _finite(row[columns[0]], "score", where), _finite(row[columns[1]], "target", where)
        if target not in (0.0, 1.0):
            raise MetricError(f"{where}: target {row[columns[1]].strip()!r} is not 0 or 1")
        scores.append(score)
        targets.append(target)
    if not scores:
        raise MetricError(f"{path} has a header but no rows: expected one score,target row per sample")
    return scores, targets


def _finite(text: str, column: str, where: str) -> float:
    """A CSV field as a finite float, or an error naming the row and the column."""
    try:
        value = float(text)
    except ValueError:
        raise MetricError(f"{where}: {column} {text.strip()!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise MetricError(f"{where}: {column} {text.strip()!r} is not a finite number")
    return value


def command_threshold(args: argparse.Namespace) -> int:
    from .threshold import threshold_curve

    scores, targets = read_scores_csv(args.csv)
    curve = threshold_curve(_read_expression(args), scores, targets, from_logits=args.from_logits)
    half = 0.0 if args.from_logits else 0.5
    better = "higher" if curve.direction == "maximize" else "lower"
    rows = (
        ("best threshold", f"{curve.best_threshold:.6g}", "predict positive for score > threshold"),
        (f"{curve.metric} at best", f"{curve.best_value:.6g}", f"{better} is better"),
        (f"{curve.metric} at {'logit 0' if args.from_logits else '0.5'}", f"{curve.value_at(half):.6g}", ""),
    )
    width = max(len(row[0]) for row in rows)
    for label, value, note in rows:
        print(f"{label.ljust(width)}  {value.ljust(10)}  {note}".rstrip())
    print(f"{len(scores)} scores, {len(curve.thresholds)} distinct thresholds")
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
    _add_loss_options(compile_parser)
    compile_parser.set_defaults(run=command_compile)

    grad_parser = commands.add_parser("grad", help="show the derived partial derivatives", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_expression(grad_parser)
    _add_report_options(grad_parser)
    grad_parser.set_defaults(run=command_grad)

    explain_parser = commands.add_parser(
        "explain",
        help="analyse a metric: direction, monotonicity, range, singular points, partials, operation counts",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_expression(explain_parser)
    _add_report_options(explain_parser)
    explain_parser.add_argument("--plot", metavar="FILE.png", help="draw the loss and per-sample gradient weight against one prediction p")
    explain_parser.add_argument(
        "--counts", default="20,10,10,60", metavar="TP,FP,FN,TN", help="counts of the rest of the batch for --plot (default 20,10,10,60)"
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
    threshold_parser.add_argument("csv", metavar="FILE.csv", help="a CSV with a header and score,target columns (target 0 or 1)")
    threshold_parser.add_argument("--from-logits", action="store_true", help="scores are logits: thresholds are logits, 0.5 becomes 0")
    threshold_parser.add_argument("--plot", metavar="FILE.png", help="draw the metric against the threshold")
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
