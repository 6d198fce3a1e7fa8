"""The command line: files written, gradients shown, errors as one clean message and exit code 2."""

import json
import subprocess
import sys

import pytest
import sympy

import metricc
from metricc.cli import main
from metricc.load import load_file


def test_compile_writes_an_importable_module(tmp_path, capsys):
    output = tmp_path / "f1.py"
    assert main(["compile", "2*TP/(2*TP+FP+FN)", "--name", "f1", "-o", str(output)]) == 0
    module = load_file(output)
    assert hasattr(module, "F1Loss")
    assert output.read_text() == metricc.emit("2*TP/(2*TP+FP+FN)", name="f1")


def test_compile_from_file_with_bindings_and_comments(tmp_path):
    metric = tmp_path / "metric.txt"
    metric.write_text("# F1 from precision and recall\nprec = TP / (TP + FP)\nrec = TP / (TP + FN)\n2 * prec * rec / (prec + rec)\n")
    output = tmp_path / "mine.py"
    assert main(["compile", "-f", str(metric), "--name", "mine", "-o", str(output)]) == 0
    assert "class MineLoss" in output.read_text()


def test_compile_options_become_defaults(tmp_path):
    output = tmp_path / "f1.py"
    main(["compile", "f1", "--from-logits", "--approximation", "identity", "-o", str(output)])
    loss = load_file(output).F1Loss()
    assert loss.from_logits is True and loss.approximation == "identity"


@pytest.mark.parametrize("form", ["text", "latex", "json"])
def test_grad_formats(form, capsys):
    assert main(["grad", "f1", "--format", form]) == 0
    out = capsys.readouterr().out
    partials = metricc.gradient("f1")
    if form == "json":
        data = json.loads(out)
        assert {k: sympy.sstr(v) for k, v in partials.items()} == {k: v["text"] for k, v in data["partials"].items()}
        assert set(data["per_sample_weights"]) == {"positive", "negative"}
    elif form == "latex":
        assert sympy.latex(partials["TP"]) in out
    else:
        assert sympy.sstr(partials["FP"]) in out and "positive example" in out


def test_errors_exit_2_without_traceback(capsys):
    assert main(["grad", "2*TPP"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("metricc: error: line 1, column 3: unknown name 'TPP'") and "Traceback" not in err


def test_console_script_help_has_examples():
    result = subprocess.run([sys.executable, "-m", "metricc.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "metricc compile f1" in result.stdout


def test_symbolic_commands_do_not_import_torch():
    script = "import sys; from metricc.cli import main; main(['grad', 'mcc']); sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode == 0


def test_list_shows_the_library(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mcc" in out and "balanced_accuracy" in out


def test_demo_runs_end_to_end(capsys):
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "d f1 / d TP" in out and "at the tuned threshold" in out
    assert "BCE + f1 loss" in out and "Read it as:" in out
    assert "LearnedLoss" in out and "LearnedLoss ended on" in out
