"""The `metricc` command: compile, grad, list. Symbolic commands never import torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import sympy

from .errors import MetricError
from .options import AVERAGES, APPROXIMATIONS, DIRECTIONS, MULTIDIM_AVERAGES, SYNCS, TASKS

EXAMPLES = """examples:
  metricc demo                                      compile f1, show its gradient, train a small model
  metricc compile f1 -o generated/f1.py            a library metric, by name
  metricc compile "2*TP/(2*TP+FP+FN)" --name f1 -o f1.py
  metricc compile -f metric.txt --name my_metric    a multi-line metric from a file
  metricc grad mcc                                  the four partial derivatives
  metricc grad "TP/(TP+FP)" --format latex
  metricc list                                      the metric library
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
    group = parser.add_argument_group("loss options (constructor defaults of the emitted module)")
    group.add_argument("--task", choices=TASKS)
    group.add_argument("--from-logits", action="store_true", default=None, help="preds are logits (sigmoid, or softmax for multiclass)")
    group.add_argument("--approximation", choices=APPROXIMATIONS, help="how a prediction becomes a soft 0/1 (default anyloss)")
    group.add_argument("--steepness", type=float, help="L of the anyloss approximation (default 73)")
    group.add_argument("--threshold", type=float, help="tau, the decision threshold (default 0.5)")
    group.add_argument("--width", type=float, help="width of the linear approximation (default 0.2)")
    group.add_argument("--average", choices=AVERAGES, help="how per-class metrics combine, in torchmetrics' words (default micro)")
    group.add_argument("--multidim-average", choices=MULTIDIM_AVERAGES, help="samplewise: counts per image, then the mean (default global)")
    group.add_argument("--ignore-index", type=int, help="target value whose positions are left out")
    group.add_argument(
        "--include-background", action=argparse.BooleanOptionalAction, default=None, help="score class 0 (default yes; MONAI's meaning)"
    )
    group.add_argument("--class-weights", type=_float_list, metavar="W,W,...", help="per-class weights for macro / weighted averaging")
    group.add_argument("--zero-division", type=float, metavar="Z", help="the metric of a class absent from targets and predictions")
    group.add_argument("--sync", choices=SYNCS, help="ddp: sum the counts over torch.distributed ranks")
    group.add_argument("--count-momentum", type=float, metavar="M", help="running counts: (1 - M) history + M batch, as BatchNorm")
    group.add_argument("--eps", type=float, help="guard for vanishing denominators (default 1e-7)")
    group.add_argument("--direction", choices=DIRECTIONS + ("maximise", "minimise"), help="default: auto")


def _loss_options(args: argparse.Namespace) -> dict:
    names = (
        "task", "from_logits", "approximation", "steepness", "threshold", "width", "average", "multidim_average", "ignore_index",
        "include_background", "class_weights", "zero_division", "sync", "count_momentum", "eps", "direction",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _float_list(text: str) -> tuple:
    """'1,2.5,3' -> (1.0, 2.5, 3.0), for --class-weights."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,2,0.5, got {text!r}") from None


def command_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_metric

    compilation = compile_metric(_read_expression(args), args.name, **_loss_options(args))
    if args.output in (None, "-"):
        sys.stdout.write(compilation.source)
    else:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(compilation.source, encoding="utf-8")
        print(f"wrote {output} ({compilation.name}: {compilation.options.direction}, class {_class(compilation.name)})", file=sys.stderr)
    return 0


def _class(name: str) -> str:
    from .emit import class_name

    return class_name(name)


def gradient_report(expression: str) -> dict:
    """The four partials and the per-sample weights, as SymPy expressions."""
    from .compiler import resolve
    from .derive import per_sample_weights

    _, derivation = resolve(expression)
    positive, negative = per_sample_weights(derivation)
    return {
        "metric": derivation.value,
        "partials": derivation.partials_by_name(),
        "per_sample": {"positive": positive, "negative": negative},
    }


def format_gradient(report: dict, form: str) -> str:
    if form == "json":
        return json.dumps(
            {
                "metric": sympy.sstr(report["metric"]),
                "partials": {k: sympy.sstr(v) for k, v in report["partials"].items()},
                "per_sample": {k: sympy.sstr(v) for k, v in report["per_sample"].items()},
                "latex": {k: sympy.latex(v) for k, v in report["partials"].items()},
            },
            indent=2,
        )
    printer = sympy.latex if form == "latex" else sympy.sstr
    metric = printer(report["metric"])
    lines = [f"metric = {metric}" if form == "text" else f"m = {metric}"]
    for count, partial in report["partials"].items():
        lines.append(f"d metric / d {count} = {printer(partial)}" if form == "text" else f"\\frac{{\\partial m}}{{\\partial \\mathrm{{{count}}}}} = {printer(partial)}")
    weights = report["per_sample"]
    if form == "text":
        lines.append(f"per-sample d metric / d a, positive example (y = 1): dTP - dFN = {printer(weights['positive'])}")
        lines.append(f"per-sample d metric / d a, negative example (y = 0): dFP - dTN = {printer(weights['negative'])}")
    else:
        lines.append(f"\\frac{{\\partial m}}{{\\partial a_i}}\\Big|_{{y_i=1}} = {printer(weights['positive'])}")
        lines.append(f"\\frac{{\\partial m}}{{\\partial a_i}}\\Big|_{{y_i=0}} = {printer(weights['negative'])}")
    return "\n".join(lines)


def command_grad(args: argparse.Namespace) -> int:
    print(format_gradient(gradient_report(_read_expression(args)), args.format))
    return 0


def command_list(args: argparse.Namespace) -> int:
    from .library import default_library

    library = default_library()
    rows = [("name", "better", "range", "aliases", "formula")]
    for name in library.names():
        entry = library.entry(name)
        low, high = (f"{v:g}" for v in entry.range)
        formula = " ".join(entry.formula.split())
        rows.append((name, "higher" if entry.higher_is_better else "lower", f"[{low}, {high}]", ", ".join(entry.aliases), formula))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4])
    return 0


def generated_sources() -> dict:
    """File name -> source for every library metric with default options: the contents of generated/."""
    from .compiler import compile_metric
    from .library import default_library

    return {f"{name}.py": compile_metric(name).source for name in default_library().names()}


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
    _add_loss_options(compile_parser)
    compile_parser.set_defaults(run=command_compile)

    grad_parser = commands.add_parser("grad", help="show the derived partial derivatives", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_expression(grad_parser)
    grad_parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    grad_parser.set_defaults(run=command_grad)

    generate_parser = commands.add_parser("generate", help="write a loss module for every library metric (generated/)")
    generate_parser.add_argument("directory", nargs="?", default="generated")
    generate_parser.set_defaults(run=command_generate)

    demo_parser = commands.add_parser("demo", help="compile a metric, show its gradient, train a small model on built-in data")
    demo_parser.add_argument("metric", nargs="?", default="f1", help="a library metric or formula (default f1)")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--epochs", type=int, default=40)
    demo_parser.set_defaults(run=command_demo)

    list_parser = commands.add_parser("list", help="list the library metrics")
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
