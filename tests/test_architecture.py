"""The layout docs/architecture.md describes is the package's, and every form has its entry in each stage table."""

import re
from pathlib import Path

import pytest

from metricc import analyses, cli, direction, emitter, formats, plots
from metricc.language import FORMS

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _described(heading: str) -> set:
    """The file names listed in the text block under a heading of docs/architecture.md."""
    section = ARCHITECTURE.split(f"## {heading}", 1)[1]
    block = section.split("```text", 1)[1].split("```", 1)[0]
    return set(re.findall(r"^(\w+\.py)\b", block, flags=re.MULTILINE))


@pytest.mark.parametrize("heading, folder", [("The compiler (`metricc/`)", "metricc"), ("The runtime (`metricc/runtime/`)", "metricc/runtime")])
def test_the_described_layout_is_the_package(heading, folder):
    files = {path.name for path in (ROOT / folder).glob("*.py")}
    described = _described(heading)
    if folder == "metricc":
        described |= {"__init__.py", "demo.py"}  # named in the lines of api.py and cli.py
    assert described == files


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.kind)
def test_every_form_has_its_entry_in_each_stage_table(form):
    assert form.kind in emitter._FORM_CODE
    assert form.kind in direction._DIRECTION_EVIDENCE and form.kind in direction.DIRECTION_SAMPLES
    assert form.kind in analyses._RANGE_SAMPLES
    assert form.kind in formats._FORM_SECTIONS
    assert form.kind in plots._PLOTS and form.kind in plots.DEFAULT_BATCH and form.kind in cli._PLOT_FLAGS
    from metricc.runtime import loss

    assert hasattr(loss, form.base_class)
