"""Identifiers planted in a landing-zone day, and a search of a state folder for them in every form a file holds.

The day is a small synthetic extract written as landing CSV files, with an e-mail, an SSN, a full name, a phone
number, a URL, an IP address, a ZIP, an MRN, a national id and a birth date typed into coded columns, and a full
name as the region of 8 encounters of one sex.

`search_state` reads every file of a state folder as bytes, and also decodes what a byte search cannot see into:
Parquet, DuckDB and SQLite cells (every column, as text; SQLite blobs searched again, inflated when zlib), the members
of zip archives (MLflow's skops model, npz) and gzip files, and every string and bytes field of an ONNX protobuf.
A planted string is looked for in UTF-8 (as written, NFC and NFD), JSON-escaped (ASCII and not), percent-encoded,
Latin-1, UTF-16 and UTF-32 (pickled numpy text), ignoring ASCII case; identifiers with 8 or more digits also as their
bare digits. A form that starts or ends with a digit only counts where it is not part of a longer number or hex
string: "28013" is found in `"region": "28013"` and in "ZIP 28013.", not in 1280139, 0.28013, 28013.5 or a hash.
"""

import datetime as dt
import gzip
import io
import json
import re
import sqlite3
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rare_triage.defs.shared.ehr_source import SyntheticEhrSource
from rare_triage.lib import schema
from rare_triage.lib.reference.ontology import ReferenceTables

DAY = "2025-03-04"
RAW_FOLDER = Path("lake") / "raw_ehr_extract"
PLANTED_NAME = ("Ximena", "Quiroga-Planted")
PLANTED_REGION = "Leocadia Villaseñor"  # a name that is no patient of the extract: only the vocabulary stops it
PLANTED_MRN = "MRN-PLANT-0042"
PLANTED_EMAIL = "ximena.quiroga@example.org"


@dataclass(frozen=True)
class Plant:
    """One identifier typed into a raw cell."""

    table: str
    column: str
    row: int
    value: str


PLANTS = (
    Plant(schema.RAW_SYMPTOMS, "hpo_id", 5, PLANTED_EMAIL),
    Plant(schema.RAW_SYMPTOMS, "hpo_id", 9, "12345678Z"),  # Spanish DNI
    Plant(schema.RAW_DIAGNOSES, "code", 3, "078-05-1120"),  # SSN
    Plant(schema.RAW_DIAGNOSES, "code", 6, PLANTED_MRN),  # the planted patient's MRN
    Plant(schema.RAW_VITALS, "unit", 7, " ".join(PLANTED_NAME)),
    Plant(schema.RAW_ENCOUNTERS, "consultation_type", 10, "xq.planted@example.net"),
    Plant(schema.RAW_ENCOUNTERS, "centre_id", 11, "+34 612 345 678"),
    Plant(schema.RAW_ENCOUNTERS, "centre_level", 12, "192.168.10.77"),
    Plant(schema.RAW_ENCOUNTERS, "region", 13, "28013"),  # a full ZIP
    Plant(schema.RAW_COMORBIDITIES, "icd10_code", 2, "https://ximena.example.org/profile"),
)
BIRTH_DATE_AS_ENCOUNTER_DATE = Plant(schema.RAW_ENCOUNTERS, "encounter_date", 14, "1961-07-23")
REGION_ROWS = tuple(range(20, 28))


def planted_day_source() -> SyntheticEhrSource:
    """The synthetic source of the planted days' content (before planting)."""
    return SyntheticEhrSource(encounters_per_day=300, population_size=4000, error_rate=0.0)


def write_landing_day(tables: dict[str, pd.DataFrame], root: Path, day: str) -> None:
    """`tables` as the landing CSV files of `day` under `root` (dates as YYYY-MM-DD)."""
    folder = root / day
    folder.mkdir(parents=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%d")


def write_planted_day(reference: ReferenceTables, root: Path, day: str = DAY) -> None:
    """A synthetic day with the planted values, written as the landing CSV files of `day`."""
    tables = planted_day_source().read_day(dt.date.fromisoformat(day), reference)
    tables = {name: frame.reset_index(drop=True).copy() for name, frame in tables.items()}
    patients, encounters = tables[schema.RAW_PATIENTS], tables[schema.RAW_ENCOUNTERS]
    planted_patient = patients.index[patients["patient_id"] == encounters.loc[0, "patient_id"]][0]
    patients.loc[planted_patient, ["given_name", "family_name", "mrn", "email", "birth_date"]] = [
        *PLANTED_NAME,
        PLANTED_MRN,
        PLANTED_EMAIL,
        pd.Timestamp(BIRTH_DATE_AS_ENCOUNTER_DATE.value),
    ]
    for plant in PLANTS:
        tables[plant.table].loc[plant.row, plant.column] = plant.value
    encounters["encounter_date"] = encounters["encounter_date"].dt.strftime("%Y-%m-%d").astype(object)
    encounters.loc[BIRTH_DATE_AS_ENCOUNTER_DATE.row, "encounter_date"] = BIRTH_DATE_AS_ENCOUNTER_DATE.value
    # 8 encounters of one sex, one age band and one centre, a full name as region: a class of 8 >= k
    region_patients = encounters.loc[list(REGION_ROWS), "patient_id"]
    in_region = patients["patient_id"].isin(region_patients)
    patients.loc[in_region, ["sex", "birth_date"]] = ["F", pd.Timestamp("1981-02-02")]
    encounters.loc[list(REGION_ROWS), ["centre_id", "centre_level", "region"]] = ["C01", "primary", PLANTED_REGION]
    write_landing_day(tables, root, day)


def planted_strings() -> list[str]:
    """Every planted value, the full name and the region name included."""
    return [p.value for p in PLANTS] + [BIRTH_DATE_AS_ENCOUNTER_DATE.value, PLANTED_REGION, " ".join(PLANTED_NAME)]


# --- the search ---------------------------------------------------------------------------------------------------

# encoding -> the bytes after an ASCII character's byte in it (for the boundary of a form)
_ENCODINGS = {"utf-8": b"", "latin-1": b"", "utf-16-le": b"\x00", "utf-32-le": b"\x00\x00\x00"}
_MIN_BARE_DIGITS = 8
_MAX_DEPTH = 4  # archives inside archives
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _texts(value: str) -> set[str]:
    """The text forms of a planted value."""
    texts = {
        value,
        unicodedata.normalize("NFC", value),
        unicodedata.normalize("NFD", value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
        re.sub(r"\s+", "", value),
    }
    digits = re.sub(r"\D", "", value)
    if len(digits) >= _MIN_BARE_DIGITS:
        texts.add(digits)
    return texts


@dataclass(frozen=True)
class _Form:
    """One byte form of a planted value, lowercased (ASCII), and the pattern of its boundaries if it needs one."""

    literal: bytes
    bounded: re.Pattern[bytes] | None

    def in_(self, lowered: bytes) -> bool:
        return self.literal in lowered and (self.bounded is None or self.bounded.search(lowered) is not None)


def _number_start(pad: bytes) -> bytes:
    """Not preceded by a hex digit, nor by a digit and a decimal point (`pad`: the encoding's bytes after one)."""
    p = re.escape(pad)
    return rb"(?<![0-9a-f]" + p + rb")(?<![0-9]" + p + rb"\." + p + rb")"


def _number_end(pad: bytes) -> bytes:
    """Not followed by a hex digit, nor by a decimal point and a digit."""
    p = re.escape(pad)
    return rb"(?![0-9a-f]" + p + rb"|\." + p + rb"[0-9]" + p + rb")"


def _forms(value: str) -> list[_Form]:
    forms = []
    for text in sorted(_texts(value)):
        for encoding, pad in _ENCODINGS.items():
            try:
                literal = text.encode(encoding).lower()
            except UnicodeEncodeError:  # Latin-1 cannot hold this form: nothing to look for in it
                continue
            before = _number_start(pad) if text[0].isdigit() else b""
            after = _number_end(pad) if text[-1].isdigit() else b""
            bounded = re.compile(before + re.escape(literal) + after) if before or after else None
            forms.append(_Form(literal, bounded))
    return forms


@dataclass(frozen=True)
class StateSearch:
    """What `search_state` read (file and decoded views, labelled `<path>[::<member>][#<decoding>]`) and found."""

    views: list[str]
    hits: dict[str, list[str]]  # planted value -> labels of the views holding it

    def outside(self, folder: Path) -> dict[str, list[str]]:
        """planted value -> views holding it, but those under `folder` (relative to the state folder)."""
        return {value: [v for v in views if not v.startswith(f"{folder}/")] for value, views in self.hits.items()}


def _cells_text(cells: Iterator[object]) -> bytes:
    """Cells as UTF-8 text, one a line (None skipped)."""
    return "\n".join(str(v) for v in cells if v is not None).encode()


def _parquet_cells(data: bytes) -> bytes:
    table = pq.read_table(pa.BufferReader(data))
    return _cells_text(v for column in table.columns for v in column.to_pylist())


def _duckdb_cells(path: Path) -> bytes:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.sql("select table_schema, table_name from information_schema.tables").fetchall()
        cells: list[object] = []
        for schema_name, table in tables:
            for row in con.sql(f'select * from "{schema_name}"."{table}"').fetchall():
                cells.extend(row)
    return _cells_text(iter(cells))


def _sqlite_cells(path: Path) -> tuple[bytes, list[bytes]]:
    """Every text and number cell of every table as text, and the blobs."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in con.execute("select name from sqlite_master where type = 'table'")]
        cells: list[object] = []
        blobs: list[bytes] = []
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    (blobs if isinstance(value, bytes) else cells).append(value)
    finally:
        con.close()
    return _cells_text(iter(cells)), blobs


def _proto_values(message: Message) -> Iterator[str | bytes]:
    """Every string and bytes field of a protobuf message, nested messages included."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _proto_values(item)
            elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                yield item


def onnx_strings(data: bytes) -> list[str]:
    """Every string field of an ONNX model (names, attributes, doc strings, metadata, string tensors)."""
    return [v for v in _proto_values(onnx.load_model_from_string(data)) if isinstance(v, str)]


def _onnx_views(data: bytes) -> list[tuple[str, bytes]]:
    values = list(_proto_values(onnx.load_model_from_string(data)))
    text = "\n".join(v for v in values if isinstance(v, str)).encode()
    return [("onnx-strings", text), *(("onnx-bytes", v) for v in values if isinstance(v, bytes))]


def _inflated(data: bytes) -> bytes | None:
    """`data` inflated when it is a complete zlib stream, else None."""
    if data[:1] != b"\x78":
        return None
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data)
    except zlib.error:  # 0x78 was not a zlib header here: the bytes are searched as they are
        return None
    return inflated if inflater.eof else None


def _nested_views(label: str, data: bytes, depth: int) -> Iterator[tuple[str, bytes]]:
    """`data` itself, then what it decodes to (archives, compressed streams, Parquet), recursively."""
    yield label, data
    if depth >= _MAX_DEPTH:
        return
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from _nested_views(f"{label}::{member}", archive.read(member), depth + 1)
    elif data.startswith(b"\x1f\x8b"):
        yield from _nested_views(f"{label}#gunzip", gzip.decompress(data), depth + 1)
    elif data.startswith(b"PAR1"):
        yield f"{label}#parquet", _parquet_cells(data)
    else:
        inflated = _inflated(data)
        if inflated is not None:
            yield from _nested_views(f"{label}#inflate", inflated, depth + 1)


def _file_views(path: Path, label: str) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    yield from _nested_views(label, data, 0)
    if data.startswith(_SQLITE_MAGIC):
        text, blobs = _sqlite_cells(path)
        yield f"{label}#sqlite", text
        for n, blob in enumerate(blobs):
            yield from _nested_views(f"{label}#sqlite-blob-{n}", blob, 1)
    elif data[8:12] == b"DUCK":
        yield f"{label}#duckdb", _duckdb_cells(path)
    elif path.suffix == ".onnx":
        for kind, view in _onnx_views(data):
            yield f"{label}#{kind}", view


def search_state(home: Path, planted: Sequence[str]) -> StateSearch:
    """Every file under `home`, and what it decodes to, searched for each planted value in each of its forms."""
    forms = {value: _forms(value) for value in planted}
    views: list[str] = []
    hits: dict[str, list[str]] = {value: [] for value in planted}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        for label, data in _file_views(path, str(path.relative_to(home))):
            views.append(label)
            lowered = data.lower()
            for value, value_forms in forms.items():
                if any(form.in_(lowered) for form in value_forms):
                    hits[value].append(label)
    return StateSearch(views, hits)
