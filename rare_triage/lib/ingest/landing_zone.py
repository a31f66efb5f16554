"""Read one day of the landing zone: integrator extracts as CSV, Parquet and FHIR R4 files.

Layout: ``<root>/<YYYY-MM-DD>/<table>.csv|.parquet`` (table one of ``schema.RAW_TABLES``)
and any ``*.json`` / ``*.ndjson`` FHIR files in the same folder: Bundles, or a FHIR Bulk Data export (one NDJSON
file per resource type, whose bare resources are read together as one collection, see ``fhir/read.py``).
``root`` is a local path or a URI (``s3://bucket/prefix``) read through a ``pyarrow.fs.FileSystem``. CSV files are
comma-separated UTF-8 with a header row; headers match the contract whatever their case or
spacing (quoted values may span lines); unknown columns are dropped with a warning. Files starting
with ``.`` or ``_`` (``_SUCCESS`` markers) and other extensions are skipped. A line with a wrong field
count or a cell that does not parse to its dtype, a FHIR resource that cannot be validated or mapped and a FHIR
file that cannot be read are left out as ``Reject``s; nothing raised or logged here quotes a value of a source row.
"""

import csv
import datetime as dt
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.read import FhirImport
from rare_triage.lib.ingest.raw_contract import Reject, reject_counts, rejects_frame
from rare_triage.lib.ingest.raw_frames import Conformed, concat_raw_tables, conform_raw_rows, normalize_header
from rare_triage.lib.schema import RAW_COLUMNS, RAW_TABLES

logger = logging.getLogger(__name__)

TABLE_SUFFIXES: Final = (".csv", ".parquet")
FHIR_SUFFIXES: Final = (".json", ".ndjson")
DAY_FOLDER: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# Arrow messages reduced to what they say about the file, never the row they may quote.
_ARROW_REASONS: Final = (
    (re.compile(r"Expected (\d+) columns?, got (\d+)"), "expected {} fields, got {}"),
    (re.compile(r"invalid UTF-?8", re.IGNORECASE), "not UTF-8 text"),
    (re.compile(r"Empty CSV file", re.IGNORECASE), "empty file"),
    (re.compile(r"magic bytes not found|Parquet file size is 0", re.IGNORECASE), "not a Parquet file"),
)


@dataclass(frozen=True)
class LandingDay:
    """The six ``RAW_*`` tables of a day folder, the source rows left out of them (no row content) and the counts
    of its FHIR files' import (centres filled in, problem list, HPO mapping coverage)."""

    tables: dict[str, pd.DataFrame]
    rejects: tuple[Reject, ...] = ()
    fhir_files: int = 0
    fhir: ImportCounts = field(default_factory=ImportCounts)

    def reject_counts(self) -> dict[str, int]:
        """Rejected rows per raw table, every table present."""
        return reject_counts(self.rejects)

    def rejects_frame(self) -> pd.DataFrame:
        """The rejects with ``raw_contract.REJECT_COLUMNS``, typed even when empty."""
        return rejects_frame(self.rejects)


def read_landing_day(
    root: str | Path, day: dt.date, filesystem: pafs.FileSystem | None = None
) -> dict[str, pd.DataFrame]:
    """The ``RAW_*`` tables of one day folder (see ``read_landing_day_with_rejects``; rejects are left out)."""
    return read_landing_day_with_rejects(root, day, filesystem).tables


def read_landing_day_with_rejects(
    root: str | Path, day: dt.date, filesystem: pafs.FileSystem | None = None
) -> LandingDay:
    """Every ``RAW_*`` table of one day folder (typed, empty when no file has it) and the rows left out of them.

    A CSV line with a wrong field count or a cell that does not parse to its column dtype is left out and
    recorded as a ``Reject`` (file, table, line, column, rule), as is a FHIR resource that cannot be mapped (column:
    its FHIR field) and a FHIR file that cannot be read (one reject of ``encounters``). Raises FileNotFoundError
    naming the folder when the day is missing, and ValueError naming the file, table and column for a missing
    required column or an unreadable CSV / Parquet file; no message or log line quotes a value of a source row.
    """
    fs, base, shown_root = resolve_root(root, filesystem)
    folder, shown_folder = f"{base}/{day.isoformat()}", f"{shown_root}/{day.isoformat()}"
    info = fs.get_file_info(folder)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"landing zone day folder not found: {shown_folder}")
    if info.type != pafs.FileType.Directory:
        raise NotADirectoryError(f"landing zone day path is not a folder: {shown_folder}")
    table_parts: list[dict[str, pd.DataFrame]] = []
    rejects: list[Reject] = []
    fhir = FhirImport()
    for item in sorted(fs.get_file_info(pafs.FileSelector(folder)), key=lambda i: i.base_name):
        name = item.base_name
        if item.type != pafs.FileType.File or name.startswith((".", "_")):
            continue
        shown = f"{shown_folder}/{name}"
        suffix = Path(name).suffix.lower()
        if suffix in FHIR_SUFFIXES:
            with fs.open_input_stream(item.path) as stream:
                fhir.add_file(stream.read(), shown)
        elif suffix in TABLE_SUFFIXES:
            table = table_of_file(name, shown)
            conformed = read_table_file(fs, item.path, table, shown)
            table_parts.append({table: conformed.frame})
            rejects.extend(conformed.rejects)
        else:
            logger.info("landing zone: skipped %s (not .csv, .parquet, .json or .ndjson)", shown)
    fhir_read = fhir.finish()
    if fhir.files:
        logger.info("landing zone %s: FHIR import counts %s", shown_folder, fhir_read.counts.as_dict())
    rejects.extend(fhir_read.rejects)
    for file, count in Counter(r.file for r in rejects).items():
        logger.warning("%s: rejected %d row(s) or resource(s) (content withheld)", file, count)
    tables = concat_raw_tables([*table_parts, fhir_read.tables])
    return LandingDay(tables, tuple(rejects), fhir_files=fhir.files, fhir=fhir_read.counts)


def landing_days(filesystem: pafs.FileSystem, root: str) -> list[str]:
    """Day folders (YYYY-MM-DD) present under `root`, sorted; none when `root` does not exist."""
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        return []
    entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=False))
    names = (e.base_name for e in entries if e.type == pafs.FileType.Directory)
    return sorted(n for n in names if DAY_FOLDER.match(n))


def resolve_root(root: str | Path, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, root path inside it, root as shown in messages) for a local path or URI."""
    text = str(root)
    shown = text.rstrip("/")
    if _URI.match(text):
        if filesystem is None:
            fs, path = pafs.FileSystem.from_uri(text)
            return fs, path.rstrip("/"), shown
        return filesystem, _URI.sub("", text).rstrip("/"), shown
    if filesystem is None or isinstance(filesystem, pafs.LocalFileSystem):
        return filesystem or pafs.LocalFileSystem(), Path(text).resolve().as_posix(), shown
    return filesystem, text.rstrip("/"), shown


def table_of_file(name: str, shown: str) -> str:
    """The raw table a ``<table>.csv|.parquet`` file holds; ValueError for any other name."""
    table = Path(name).stem.strip().lower()
    if table not in RAW_TABLES:
        raise ValueError(f"{shown}: file name does not name a raw table; expected one of {', '.join(RAW_TABLES)}")
    return table


def read_table_file(fs: pafs.FileSystem, path: str, table: str, shown: str) -> Conformed:
    """One CSV or Parquet extract conformed to the columns and dtypes of ``table``, with its rejected rows."""
    kind = Path(path).suffix.lstrip(".").lower()
    parsed, problem = _read_rows(fs, path, kind)
    if parsed is None:  # raised here, outside the except clause: no chained Arrow error quoting a row
        raise ValueError(f"{shown}: table {table!r}: cannot read as {kind}: {problem}")
    frame = parsed.frame
    frame.columns = [normalize_header(c) for c in frame.columns]
    names = list(frame.columns)
    duplicated = sorted({c for c in names if c in RAW_COLUMNS[table] and names.count(c) > 1})
    if duplicated:
        raise ValueError(f"{shown}: duplicate column(s) {', '.join(duplicated)} after normalising the header")
    frame = frame.loc[:, [c for c in names if c in RAW_COLUMNS[table]]]
    conformed = conform_raw_rows(frame, table, shown, lines=parsed.kept_records())
    rejects = [*parsed.bad_records(shown, table), *conformed.rejects]
    extra = [c for c in names if c not in RAW_COLUMNS[table]]
    if extra:  # after the required-column check: a headerless file never gets its first row logged
        logger.warning("%s: dropped %d unknown column(s) %s", shown, len(extra), ", ".join(extra))
    if rejects and kind == "csv":
        rejects = parsed.with_physical_lines(rejects)
    return Conformed(conformed.frame, tuple(sorted(rejects, key=lambda r: r.line or 0)))


@dataclass(frozen=True)
class SourceRows:
    """Rows read from a file: record numbers are counted as the CSV reader does (header 1, blank lines skipped)."""

    frame: pd.DataFrame
    bad: tuple[tuple[int, str], ...] = ()  # (record number, rule) of lines left out by the parser
    data: bytes | None = None  # the CSV bytes, to turn record numbers into physical lines when needed

    def kept_records(self) -> np.ndarray:
        """Record number of each row of ``frame`` (its 1-based row for a Parquet file)."""
        if self.data is None:
            return np.arange(1, len(self.frame) + 1)
        records = np.arange(2, len(self.frame) + len(self.bad) + 2)
        return records[~np.isin(records, [number for number, _ in self.bad])]

    def bad_records(self, shown: str, table: str) -> list[Reject]:
        """The parser's left-out lines as rejects of a whole line."""
        return [Reject(shown, table, number or None, None, rule) for number, rule in self.bad]

    def with_physical_lines(self, rejects: list[Reject]) -> list[Reject]:
        """Rejects with record numbers turned into the file line where the record starts (quoted newlines count)."""
        starts = _record_starts(self.data or b"")
        if len(starts) != len(self.frame) + len(self.bad) + 1:
            return rejects  # the two parsers disagree: keep record numbers
        return [replace(r, line=starts[r.line - 1]) if r.line else r for r in rejects]


def read_csv_rows(data: bytes) -> SourceRows:
    """The CSV rows as text, with the record numbers (header = 1) of lines of a wrong field count left out.

    Raises csv.Error without a header row, and pyarrow / Unicode errors for unreadable data.
    """
    header = next(csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")), None)
    if not header:
        raise csv.Error("no header row")
    bad: list[tuple[int, str]] = []

    def skip(row: pacsv.InvalidRow) -> str:
        bad.append((row.number or 0, f"expected {row.expected_columns} fields, got {row.actual_columns}"))
        return "skip"

    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True, null_values=[""]
    )
    frame = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(use_threads=False),  # single-threaded: invalid rows carry their number
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
        convert_options=options,
    ).to_pandas()
    return SourceRows(frame, tuple(bad), data)


def _record_starts(data: bytes) -> list[int]:
    """Line (1-based) where each non-empty CSV record starts, header first."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    starts, end = [], 0
    try:
        for record in reader:
            if record:
                starts.append(end + 1)
            end = reader.line_num
    except csv.Error:
        return []
    return starts


def _read_rows(fs: pafs.FileSystem, path: str, kind: str) -> tuple[SourceRows | None, str]:
    """(rows, "") or (None, the problem in words that never quote the data)."""
    try:
        if kind == "parquet":
            return SourceRows(pq.read_table(path, filesystem=fs).to_pandas()), ""
        with fs.open_input_stream(path) as stream:
            return read_csv_rows(stream.read()), ""
    except (pa.ArrowException, UnicodeDecodeError, csv.Error) as error:
        return None, safe_reason(error)


def safe_reason(error: Exception) -> str:
    """What went wrong reading a file, from a fixed vocabulary: Arrow and codec messages may quote the data."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte offset {error.start})"
    if isinstance(error, csv.Error):
        return "no header row" if str(error) == "no header row" else "malformed header row"
    message = str(error)
    for pattern, reason in _ARROW_REASONS:
        found = pattern.search(message)
        if found:
            return reason.format(*found.groups())
    return f"unreadable file ({type(error).__name__}; details withheld)"
