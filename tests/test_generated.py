"""generated/ holds the emitted module of every library metric, as the current compiler writes it."""

from pathlib import Path

from metricc.compiler import generated_sources

GENERATED = Path(__file__).resolve().parent.parent / "generated"


def test_generated_modules_are_up_to_date():
    expected = generated_sources()
    present = {path.name for path in GENERATED.glob("*.py")}
    assert present == set(expected), "run: metricc generate generated/"
    stale = [name for name, source in expected.items() if (GENERATED / name).read_text(encoding="utf-8") != source]
    assert not stale, f"stale: {stale}; run: metricc generate generated/"
    assert {"f1.py", "mcc.py", "balanced_accuracy.py"} <= present
