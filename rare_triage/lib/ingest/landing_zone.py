"""Read one day of the landing zone: integrator extracts as CSV, Parquet and FHIR R4 files.

Layout: ``<root>/<YYYY-MM-DD>/<table>.csv|.parquet`` (table one of ``schema.RAW_TABLES``)
and any ``*.json`` / ``*.ndjson`` FHIR Bundles in the same folder. ``root`` is a local path
or a URI (``s3://bucket/prefix``) read through a ``pyarrow.fs.FileSystem``. CSV files are
comma-separated UTF-8 with a header row; headers match the contract whatever their case or
spacing; unknown columns are dropped with a warning. Files starting with ``.`` or ``_``
(``_SUCCESS`` markers) and other extensions are skipped.
"""

import csv
import datetime as dt
import io
import logging
import re
from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rare_triage.lib.ingest.fhir.read import read_fhir_file
from rare_triage.lib.ingest.raw_frames import concat_raw_tables, conform_raw_table, normalize_header
from rare_triage.lib.schema import RAW_COLUMNS, RAW_TABLES

logger = logging.getLogger(__name__)

TABLE_SUFFIXES: Final = (".csv", ".parquet")
FHIR_SUFFIXES: Final = (".json", ".ndjson")
DAY_FOLDER: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_FIELD_COUNT: Final = re.compile(r"^(.*Expected \d+ columns?, got \d+)")


def read_landing_day(
    root: str | Path, day: dt.date, filesystem: pafs.FileSystem | None = None
) -> dict[str, pd.DataFrame]:
    """The ``RAW_*`` tables of one day folder, every table present (empty when no file has it).

    Raises FileNotFoundError naming the folder when the day is missing, and ValueError
    naming the file and column for a missing required column or an unreadable value.
    """
    fs, base, shown_root = resolve_root(root, filesystem)
    folder, shown_folder = f"{base}/{day.isoformat()}", f"{shown_root}/{day.isoformat()}"
    info = fs.get_file_info(folder)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"landing zone day folder not found: {shown_folder}")
    if info.type != pafs.FileType.Directory:
        raise NotADirectoryError(f"landing zone day path is not a folder: {shown_folder}")
    table_parts: list[dict[str, pd.DataFrame]] = []
    fhir_parts: list[dict[str, pd.DataFrame]] = []
    for item in sorted(fs.get_file_info(pafs.FileSelector(folder)), key=lambda i: i.base_name):
        name = item.base_name
        if item.type != pafs.FileType.File or name.startswith((".", "_")):
            continue
        shown = f"{shown_folder}/{name}"
        suffix = Path(name).suffix.lower()
        if suffix in FHIR_SUFFIXES:
            with fs.open_input_stream(item.path) as stream:
                fhir_parts.append(read_fhir_file(stream.read(), name=shown))
        elif suffix in TABLE_SUFFIXES:
            table = table_of_file(name, shown)
            table_parts.append({table: read_table_file(fs, item.path, table, shown)})
        else:
            logger.info("landing zone: skipped %s (not .csv, .parquet, .json or .ndjson)", shown)
    return concat_raw_tables([*table_parts, concat_raw_tables(fhir_parts, deduplicate=True)])


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


def read_table_file(fs: pafs.FileSystem, path: str, table: str, shown: str) -> pd.DataFrame:
    """One CSV or Parquet extract conformed to the columns and dtypes of ``table``."""
    try:
        if path.lower().endswith(".parquet"):
            frame = pq.read_table(path, filesystem=fs).to_pandas()
        else:
            with fs.open_input_stream(path) as stream:
                frame = read_csv_as_strings(stream.read())
    except (pa.ArrowException, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"{shown}: cannot read as {Path(path).suffix.lstrip('.')}: {_without_row_content(error)}"
        ) from error
    frame.columns = [normalize_header(c) for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise ValueError(f"{shown}: duplicate column(s) {', '.join(duplicated)} after normalising the header")
    extra = [c for c in frame.columns if c not in RAW_COLUMNS[table]]
    if extra:
        logger.warning("%s: dropped unknown column(s) %s", shown, ", ".join(extra))
    return conform_raw_table(frame, table, shown)


def read_csv_as_strings(data: bytes) -> pd.DataFrame:
    """Every column as text (``""`` -> None, leading zeros kept); a row with a wrong field count is an error."""
    header = next(csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")), None)
    if not header:
        raise csv.Error("no header row")
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True, null_values=[""]
    )
    return pacsv.read_csv(io.BytesIO(data), convert_options=options).to_pandas()


def _without_row_content(error: Exception) -> str:
    """Arrow quotes the offending line; keep patient data out of error messages and logs."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    counted = _FIELD_COUNT.match(message)
    return f"{counted.group(1)} (row content withheld)" if counted else message
