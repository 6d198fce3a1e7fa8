"""Scores and 0/1 targets from a CSV file, for `metricc threshold`: UTF-8, any delimiter among , ; tab |, a
header naming the two columns; every defect of the file is one MetricError that names its line."""

from __future__ import annotations

from typing import List, Optional

from .errors import MetricError

MAX_LINE_CHARACTERS = 1 << 20  # a score,target row is short: a longer line is refused before it is held in memory
SNIFF_CHARACTERS = 2048  # csv.Sniffer's regular expressions take quadratic time on hostile text: sniff a bounded sample
DELIMITERS = ",;\t|"


def read_scores_csv(path: str, score_column: str = "score", target_column: str = "target", delimiter: Optional[str] = None) -> tuple:
    """(scores, targets) as float lists from a UTF-8 CSV (a byte-order mark allowed, any line ending) whose header
    names the two columns, in any case; the delimiter is sniffed among , ; tab | unless given. Any defect of the
    file is one MetricError."""
    import codecs
    import csv
    import io
    import itertools

    try:
        with open(path, "rb") as raw:
            if raw.peek(2).startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise MetricError(f"{path} is UTF-16 text: save it as UTF-8 (in Excel: CSV UTF-8)")
            # undecodable bytes become lone surrogates, so that _text_lines can name their line
            with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape") as text:
                lines = _text_lines(text, path)
                head = list(itertools.islice(lines, 20))
                if delimiter is None:
                    delimiter = _sniffed_delimiter(head)
                reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter, strict=True)
                try:
                    return _read_columns(reader, path, score_column, target_column, delimiter)
                except csv.Error as error:
                    raise MetricError(f"{path}, line {reader.line_num}: not a CSV: {_csv_problem(error)}") from None
    except OSError as error:
        raise MetricError(f"cannot read {path}: {error.strerror or error}") from None


def _text_lines(text, path: str):
    """The lines of a text handle; a NUL byte, a byte that is not UTF-8 or a line longer than MAX_LINE_CHARACTERS
    ends the reading with a MetricError naming the line."""
    import itertools
    import re

    undecoded = re.compile("[\udc80-\udcff]")
    for number in itertools.count(1):
        line = text.readline(MAX_LINE_CHARACTERS + 1)
        if not line:
            return
        if "\0" in line:
            raise MetricError(f"{path}, line {number}: a NUL byte: this is a binary file (or UTF-16), not a CSV of scores")
        if len(line) > MAX_LINE_CHARACTERS:
            raise MetricError(f"{path}, line {number} is longer than {MAX_LINE_CHARACTERS} characters: not a CSV of scores")
        bad = None if line.isascii() else undecoded.search(line)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            raise MetricError(f"{path}, line {number}: byte 0x{byte:02x} at column {bad.start() + 1} is not UTF-8: save the file as UTF-8 (in Excel: CSV UTF-8)")
        yield line


def _csv_problem(error: Exception) -> str:
    """csv's message, with the likely cause where the message alone is cryptic."""
    text = str(error)
    if text == "unexpected end of data":
        return 'the file ends inside a " quote that is never closed'
    if text.startswith("field larger than field limit"):
        return f'{text}: a very long field, or a " quote that is never closed'
    return text


def _sniffed_delimiter(head: List[str]) -> str:
    """The delimiter csv.Sniffer finds among , ; tab | in the first lines (at most SNIFF_CHARACTERS), else a comma."""
    import csv

    sample = "".join(head)[:SNIFF_CHARACTERS]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _read_columns(reader, path: str, score_column: str, target_column: str, delimiter: str) -> tuple:
    """The two named columns of the rows after the header, as finite floats; blank rows are skipped."""
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise MetricError(f"{path} is empty: expected a header line with {score_column},{target_column} columns and one row per sample")
    columns = tuple(_column_index(header, name, flag, path, delimiter) for name, flag in ((score_column, "--score-column"), (target_column, "--target-column")))
    if columns[0] == columns[1]:
        raise MetricError(f"{path}: --score-column and --target-column name the same column {header[columns[0]].strip()!r}")
    (score_at, target_at), (score_name, target_name) = columns, (header[columns[0]].strip(), header[columns[1]].strip())
    scores, targets, width = [], [], len(header)
    for row_number, row in enumerate(reader, start=1):
        try:  # the fast path of a well-formed row; anything else is looked at closely below
            score_text, target_text = row[score_at], row[target_at]
            score, target = float(score_text), float(target_text)
            well_formed = score - score == 0.0 and (target == 0.0 or target == 1.0) and len(row) == width
            well_formed = well_formed and "_" not in score_text and "_" not in target_text  # float() reads 1_0 as 10
        except (IndexError, ValueError):
            well_formed = False
        if not well_formed:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}, row {row_number} (line {reader.line_num})"
            if len(row) != width:
                raise MetricError(f"{where}: {len(row)} fields, expected {width} as in the header")
            score, target = (_finite(row[at], name, where, delimiter) for at, name in ((score_at, score_name), (target_at, target_name)))
            if target not in (0.0, 1.0):
                raise MetricError(f"{where}: {target_name} {_shown(row[target_at])} is not 0 or 1")
        scores.append(score)
        targets.append(target)
    if not scores:
        raise MetricError(f"{path} has a header but no rows: expected one {score_column},{target_column} row per sample")
    return scores, targets


def _column_index(header: List[str], name: str, flag: str, path: str, delimiter: str) -> int:
    """The one header cell equal to `name` up to case and surrounding spaces; otherwise a MetricError saying
    what the header holds and which flag names another column or delimiter."""
    wanted = name.strip().casefold()
    found = [i for i, cell in enumerate(header) if cell.strip().casefold() == wanted]
    if len(found) > 1:
        raise MetricError(f"{path}: the header has {len(found)} columns named {name!r} (columns {', '.join(str(i + 1) for i in found)}): rename one")
    if not found:
        cells = ", ".join(_shown(cell.strip()) for cell in header[:20]) + (", ..." if len(header) > 20 else "")
        raise MetricError(
            f"{path}: the header has no {name!r} column (found {cells}; delimiter {delimiter!r}): "
            f"name the column with {flag}, or the delimiter with --delimiter"
        )
    return found[0]


def _shown(text: str, limit: int = 40) -> str:
    """A cell quoted for an error message: on one line, and cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _finite(text: str, column: str, where: str, delimiter: str) -> float:
    """A CSV field as a finite float, or an error naming the row and the column. Where the delimiter is not a
    comma, a decimal comma (0,25: what Excel writes in many locales) is read as a decimal point."""
    if "\n" in text or "\r" in text:
        raise MetricError(f'{where}: the {column} field runs over several lines: is a " quote left open?')
    if delimiter != "," and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        if "_" in text:  # float() reads 1_0 as 10, a digit separator no CSV writer uses
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise MetricError(f"{where}: {column} {_shown(text.strip())} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise MetricError(f"{where}: {column} {_shown(text.strip())} is not a finite number")
    return value
