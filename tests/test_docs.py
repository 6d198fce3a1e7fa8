"""Docs that cannot go stale: every `$ metricc ...` block in README.md and docs/*.md quotes what the command prints
now, the JSON examples are abridged real output, and the figures the prose takes from the code are the code's."""

import doctest
import json
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import metricc
from metricc.cli import main
from metricc.library import default_library

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ELISION = re.compile(r"\.\.\.|…")

#: Files the quoted commands read, as the docs describe them (docs/language.md: "several lines, with comments").
INPUT_FILES = {
    "metric.txt": "# F1 from precision and recall\nprec = TP / (TP + FP)\nrec = TP / (TP + FN)\n2 * prec * rec / (prec + rec)\n",
    # docs/constraints.md: 20 scores, 11 positives; the 10 highest hold 9 of them (precision exactly 0.9)
    "scores.csv": "score,target\n" + "".join(
        f"{score},{target}\n"
        for score, target in zip(
            (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02),
            (1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0),
        )
    ),
}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    info: str
    lines: Tuple[str, ...]


@dataclass(frozen=True)
class QuotedCommand:
    doc: Path
    line: int
    command: str
    output: Tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc.name}:{self.line} {self.command}"


def code_blocks(doc: Path) -> Iterator[Block]:
    """The fenced blocks of a Markdown file."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if start is None:
                start, info = number, line[3:].strip()
            else:
                yield Block(doc, start, info, tuple(lines[start:number - 1]))
                start = None


def quoted_commands() -> List[QuotedCommand]:
    """Each `$ metricc ...` line of a code block, with the lines under it up to the next `$ ` line or the fence."""
    found = []
    for doc in DOCS:
        for block in code_blocks(doc):
            for offset, line in enumerate(block.lines):
                if line.startswith("$ metricc"):
                    rest = block.lines[offset + 1:]
                    end = next((i for i, later in enumerate(rest) if later.startswith("$ ")), len(rest))
                    found.append(QuotedCommand(doc, block.line + 1 + offset, line[2:], tuple(rest[:end])))
    return found


def line_pattern(quoted: str) -> "re.Pattern[str]":
    """A quoted line as a pattern of the real one: `...` (or `…`) stands for any text, the rest is literal."""
    return re.compile(".*".join(re.escape(part) for part in ELISION.split(quoted.rstrip())) + r"\Z")


def quotes(quoted: Tuple[str, ...], output: Tuple[str, ...]) -> bool:
    """Whether the quoted lines are the output, top to bottom: a line of only `...` stands for any number of lines,
    every other quoted line for one real line (see line_pattern)."""

    @lru_cache(maxsize=None)
    def match(i: int, j: int) -> bool:
        if i == len(quoted):
            return j == len(output)
        if ELISION.fullmatch(quoted[i].strip()):
            return any(match(i + 1, k) for k in range(j, len(output) + 1))
        return j < len(output) and line_pattern(quoted[i]).match(output[j].rstrip()) is not None and match(i + 1, j + 1)

    return match(0, 0)


def run(command: str, directory: Path, capsys, monkeypatch) -> str:
    """The command's standard output, run by metricc's entry point in a directory holding INPUT_FILES."""
    argv = shlex.split(command, comments=True)
    assert argv[0] == "metricc", command
    monkeypatch.chdir(directory)
    for name, text in INPUT_FILES.items():
        (directory / name).write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(argv[1:])
    captured = capsys.readouterr()
    assert code == 0, f"{command} exited with {code}: {captured.err}"
    return captured.out


def test_the_docs_quote_commands():
    """The collection below finds the blocks it is meant to check (a changed fence style would empty it)."""
    found = {str(quoted).split(" ", 1)[1] for quoted in quoted_commands()}
    assert {"metricc grad f1", "metricc explain mcc"} <= found


@pytest.mark.parametrize("quoted", quoted_commands(), ids=str)
def test_a_quoted_command_prints_what_the_doc_shows(quoted, tmp_path, capsys, monkeypatch):
    output = tuple(run(quoted.command, tmp_path, capsys, monkeypatch).splitlines())
    if quoted.output:
        assert quotes(quoted.output, output), (
            f"{quoted} quotes\n" + "\n".join(quoted.output) + "\n\nbut prints\n" + "\n".join(output)
        )


def test_every_command_the_docs_show_is_one_the_cli_has():
    """Also the listings without output (the command-line table): `metricc WORD` names a subcommand."""
    from metricc.cli import build_parser

    commands = set(next(action for action in build_parser()._actions if action.dest == "command").choices)
    shown = [
        (block, line) for doc in DOCS for block in code_blocks(doc) for line in block.lines if re.match(r"(\$ )?metricc ", line)
    ]
    assert len(shown) > 10
    for block, line in shown:
        word = line.removeprefix("$ ").split()[1]
        assert word in commands, f"{block.doc.name}:{block.line}: {line!r} names no metricc command"


def test_quoting_allows_elisions_and_cut_lines_and_nothing_else():
    output = ("first line", "second line", "third line")
    assert quotes(("first line", "...", "third line"), output)
    assert quotes(("first ...", "...", "t...e"), output)
    assert quotes(("...",), output) and quotes(output, output)
    assert not quotes(("first line", "third line"), output)
    assert not quotes(("first line", "second line"), output)
    assert not quotes(("first line", "second line", "third line", "fourth line"), output)
    assert not quotes(("first lin", "...",), output)


def abridged(quoted, real) -> bool:
    """Whether quoted JSON is real JSON abridged: a `"...": "..."` member stands for the other members, a trailing
    "..." item for the other items, a string with `...` matches as line_pattern does; everything else is equal."""
    if isinstance(quoted, dict):
        if not isinstance(real, dict):
            return False
        keys = set(quoted) - {"..."}
        if not keys <= set(real) or ("..." not in quoted and keys != set(real)):
            return False
        return all(abridged(quoted[key], real[key]) for key in keys)
    if isinstance(quoted, list):
        if not isinstance(real, list):
            return False
        if quoted and quoted[-1] == "...":
            quoted, real = quoted[:-1], real[: len(quoted) - 1]
        return len(quoted) == len(real) and all(abridged(q, r) for q, r in zip(quoted, real))
    if isinstance(quoted, str) and ELISION.search(quoted):
        return isinstance(real, str) and line_pattern(quoted).match(real) is not None
    return type(quoted) is type(real) and quoted == real


def json_examples() -> List[Tuple[Block, str]]:
    """Each ```json block with the `metricc ... --format json` command named in the three lines above it."""
    examples = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for block in code_blocks(doc):
            if block.info == "json":
                above = " ".join(lines[max(0, block.line - 4): block.line - 1])
                commands = re.findall(r"`(metricc [^`]*--format json[^`]*)`", above)
                assert commands, f"{doc.name}:{block.line}: a JSON example without the command that prints it"
                examples.append((block, commands[-1]))
    return examples


@pytest.mark.parametrize("block,command", json_examples(), ids=lambda value: f"{value.doc.name}:{value.line}" if isinstance(value, Block) else "")
def test_a_json_example_is_the_commands_output_abridged(block, command, tmp_path, capsys, monkeypatch):
    real = json.loads(run(command, tmp_path, capsys, monkeypatch))
    assert abridged(json.loads("\n".join(block.lines)), real), f"{block.doc.name}:{block.line} is not {command} abridged"


def prose() -> str:
    return "\n".join(" ".join(doc.read_text(encoding="utf-8").split()) for doc in DOCS)


def figures(pattern: str) -> List[int]:
    """Every number the docs' prose states where pattern (with one group) matches; at least one must."""
    found = [int(match.replace(",", "")) for match in re.findall(pattern, prose())]
    assert found, f"no {pattern!r} in the docs: update this test with the prose"
    return found


def test_the_number_of_library_metrics_is_the_librarys():
    count = len(default_library().names())
    assert set(figures(r"The library has (\d+) metrics")) == {count}


def test_quoted_file_lengths_are_the_emitted_files():
    """'about N lines' within 15%: generated/f1.py, and the standalone form that inlines the runtime."""
    default = len((ROOT / "generated" / "f1.py").read_text(encoding="utf-8").splitlines())
    standalone = len(metricc.emit("f1", standalone=True).splitlines())
    for stated, real in (
        (figures(r"`generated/f1.py` is about ([\d,]+) lines"), default),
        (figures(r"imports only torch and Python's standard library, about ([\d,]+) lines"), standalone),
    ):
        assert all(abs(number - real) <= 0.15 * real for number in stated), (stated, real)


def test_the_library_table_is_what_metricc_list_prints(capsys):
    """docs/language.md's table of the library is `metricc list --format markdown`, row for row."""
    assert main(["list", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    lines = (ROOT / "docs" / "language.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(table[0])
    assert lines[start: start + len(table)] == table and not lines[start + len(table)].startswith("|")


def test_a_gradient_the_docs_show_is_the_gradient():
    """`metricc.gradient("f1")   # {"TP": ..., ...}` in a Python block: each partial it spells out is SymPy's."""
    shown = [
        (block, match)
        for doc in DOCS
        for block in code_blocks(doc)
        if block.info == "python"
        for line in block.lines
        for match in [re.match(r'\s*metricc\.gradient\("([^"]+)"\)\s*# (\{.*\})\s*$', line)]
        if match
    ]
    assert shown, "no metricc.gradient example in the docs: update this test with them"
    for block, match in shown:
        partials = metricc.gradient(match.group(1))
        pairs = re.findall(r'"(TP|FP|FN|TN)": (.*?)(?=, "(?:TP|FP|FN|TN)"|\}$)', match.group(2))
        assert {count for count, _ in pairs} == set(partials), match.group(0)
        for count, text in pairs:
            assert ELISION.fullmatch(text) or text == str(partials[count]), f"{block.doc.name}:{block.line}: {count} is {partials[count]}"


def test_the_package_docstrings_examples_run_as_shown():
    failures, tried = doctest.testmod(metricc, optionflags=doctest.ELLIPSIS)
    assert tried and not failures
