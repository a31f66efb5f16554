"""The phenotype encoding a model was published with, validated, and the lookup tables the encoder reads.

The platform writes it (`rare_triage/lib/features/phenotype_encoding.py`, format `ENCODING_FORMAT`): inline in a
format-1 manifest (`manifest["phenotype_encoding"]`), as the sibling file `manifest["files"]["phenotype_encoding"]`
from format 2 on. Its tables reproduce the feature SQL (`rare_triage/lib/features/sql/`):
- `terms`: every HPO id of the release (current, alternative and replaced obsolete ids) -> [information content
  (6 decimals, as the SQL's DECIMAL(18, 6)), indices into `vocabulary_ids` it rolls up to, indices into
  `system_ids` above it]. An observed id sets those flags;
- `vocabulary_ancestors`: per vocabulary term its is-a ancestors, itself included: an excluded id marks absent
  every vocabulary term it is, or is an ancestor of; an excluded organ system, or `phenotypic_abnormality`
  (HP:0000118), marks that system, or every system, absent;
- `fever_terms` / `pain_terms`: a term is a fever (pain) term when it is one of them, or rolls up to a vocabulary
  term having one of them as ancestor.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from serving.contract import HpoId
from serving.encoding.errors import EncodingContractError

ENCODING_FORMAT: Final = "rare-triage-phenotype-encoding/1"
IC_SCALE: Final = 10**6  # information content in millionths: sums exact, as the SQL's DECIMAL(18, 6)


class _EncodingDocument(msgspec.Struct, forbid_unknown_fields=True):
    """The JSON shape of format `ENCODING_FORMAT` (another shape must come with another format)."""

    format: str
    hpo_release: str
    specific_term_ic: float
    vocabulary_ids: list[HpoId]
    system_ids: list[HpoId]
    terms: dict[HpoId, tuple[float, list[int], list[int]]]
    vocabulary_ancestors: dict[HpoId, list[HpoId]]
    pain_terms: list[HpoId]
    fever_terms: list[HpoId]
    phenotypic_abnormality: HpoId


@dataclass(frozen=True, eq=False)
class PhenotypeEncoding:
    """A validated phenotype encoding; `terms` maps an HPO id to (IC in millionths, vocabulary, system indices)."""

    hpo_release: str
    specific_term_ic: float
    vocabulary_ids: tuple[str, ...]
    system_ids: tuple[str, ...]
    terms: Mapping[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = field(repr=False)
    vocabulary_ancestors: Mapping[str, tuple[str, ...]] = field(repr=False)
    pain_terms: frozenset[str] = field(repr=False)
    fever_terms: frozenset[str] = field(repr=False)
    phenotypic_abnormality: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PhenotypeEncoding":
        """Validate `data` (the JSON object the platform published); EncodingContractError naming the field."""
        if not isinstance(data, Mapping):
            raise EncodingContractError(f"phenotype encoding: expected a JSON object, got {type(data).__name__}")
        found = data.get("format")
        if found != ENCODING_FORMAT:
            raise EncodingContractError(f"phenotype encoding: format {found!r} is not {ENCODING_FORMAT!r}")
        try:
            doc = msgspec.convert(data, _EncodingDocument)
        except msgspec.ValidationError as exc:
            raise EncodingContractError(f"phenotype encoding: {exc}") from exc
        return cls._checked(doc)

    @classmethod
    def _checked(cls, doc: _EncodingDocument) -> "PhenotypeEncoding":
        for name in ("vocabulary_ids", "system_ids"):
            ids = getattr(doc, name)
            if len(set(ids)) != len(ids):
                raise EncodingContractError(f"phenotype encoding: {name} repeats an id")
        if set(doc.vocabulary_ancestors) != set(doc.vocabulary_ids):
            raise EncodingContractError("phenotype encoding: vocabulary_ancestors must have exactly the vocabulary_ids")
        for vocab_id, ancestors in doc.vocabulary_ancestors.items():
            if vocab_id not in ancestors:
                raise EncodingContractError(
                    f"phenotype encoding: vocabulary_ancestors[{vocab_id!r}] lacks the term itself"
                )
        n_vocab, n_systems = len(doc.vocabulary_ids), len(doc.system_ids)
        terms: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = {}
        for hpo_id, (ic, vocab, systems) in doc.terms.items():
            if not 0.0 <= ic < 1e6:  # also refuses NaN
                raise EncodingContractError(f"phenotype encoding: terms[{hpo_id!r}]: information content {ic!r}")
            if any(not 0 <= i < n_vocab for i in vocab) or any(not 0 <= i < n_systems for i in systems):
                raise EncodingContractError(f"phenotype encoding: terms[{hpo_id!r}]: index out of range")
            terms[hpo_id] = (round(ic * IC_SCALE), tuple(vocab), tuple(systems))
        if not 0.0 <= doc.specific_term_ic < 1e6:
            raise EncodingContractError(f"phenotype encoding: specific_term_ic {doc.specific_term_ic!r}")
        return cls(
            hpo_release=doc.hpo_release,
            specific_term_ic=doc.specific_term_ic,
            vocabulary_ids=tuple(doc.vocabulary_ids),
            system_ids=tuple(doc.system_ids),
            terms=terms,
            vocabulary_ancestors={k: tuple(v) for k, v in doc.vocabulary_ancestors.items()},
            pain_terms=frozenset(doc.pain_terms),
            fever_terms=frozenset(doc.fever_terms),
            phenotypic_abnormality=doc.phenotypic_abnormality,
        )


class TermInfo(msgspec.Struct, frozen=True, array_like=True):
    """What the encoder needs of one known HPO id, found with one dict lookup."""

    row: int  # row of the PhenotypeTables arrays
    sets_flag: bool  # rolls up to a vocabulary term or an organ system
    is_fever: bool


@dataclass(frozen=True, eq=False)
class PhenotypeTables:
    """Arrays built once per model load. Rows of the observed-term arrays are the `terms` in order, plus a last
    row of zeros (`unknown_row`) for an id outside the release; rows of the excluded-term arrays are the ids whose
    exclusion marks some vocabulary term or organ system absent."""

    n_vocabulary: int
    n_systems: int
    terms: Mapping[str, TermInfo] = field(repr=False)
    unknown_row: int
    vocabulary_present: npt.NDArray[np.bool_] = field(repr=False)  # [terms + 1, vocabulary]
    systems_present: npt.NDArray[np.bool_] = field(repr=False)  # [terms + 1, systems]
    ic_millionths: npt.NDArray[np.int64] = field(repr=False)  # [terms + 1]
    specific: npt.NDArray[np.bool_] = field(repr=False)  # [terms + 1]: information content >= specific_term_ic
    excluded_rows: Mapping[str, int] = field(repr=False)
    vocabulary_absent: npt.NDArray[np.bool_] = field(repr=False)  # [excluded ids, vocabulary]
    systems_absent: npt.NDArray[np.bool_] = field(repr=False)  # [excluded ids, systems]

    @classmethod
    def build(cls, encoding: PhenotypeEncoding) -> "PhenotypeTables":
        n_terms, n_vocab, n_systems = len(encoding.terms), len(encoding.vocabulary_ids), len(encoding.system_ids)
        vocabulary_present = np.zeros((n_terms + 1, n_vocab), dtype=np.bool_)
        systems_present = np.zeros((n_terms + 1, n_systems), dtype=np.bool_)
        ic = np.zeros(n_terms + 1, dtype=np.int64)
        for row, (ic_millionths, vocab, systems) in enumerate(encoding.terms.values()):
            ic[row] = ic_millionths
            vocabulary_present[row, list(vocab)] = True
            systems_present[row, list(systems)] = True

        def rolls_under(roots: frozenset[str]) -> npt.NDArray[np.bool_]:
            """Terms that are a root or roll up to a vocabulary term having a root as ancestor (the score SQL)."""
            vocab_under = np.array(
                [bool(roots.intersection(encoding.vocabulary_ancestors[v])) for v in encoding.vocabulary_ids],
                dtype=np.bool_,
            )
            under: npt.NDArray[np.bool_] = np.asarray((vocabulary_present & vocab_under).any(axis=1), dtype=np.bool_)
            under[[row for row, hpo_id in enumerate(encoding.terms) if hpo_id in roots]] = True
            return under

        is_fever = rolls_under(encoding.fever_terms)
        flagging: npt.NDArray[np.bool_] = np.asarray(vocabulary_present.any(axis=1) | systems_present.any(axis=1))
        sets_flag = [bool(v) for v in flagging]
        fever = [bool(v) for v in is_fever]
        terms = {hpo_id: TermInfo(row, sets_flag[row], fever[row]) for row, hpo_id in enumerate(encoding.terms)}

        vocab_marks: dict[str, list[int]] = {}
        for index, vocab_id in enumerate(encoding.vocabulary_ids):
            for ancestor in encoding.vocabulary_ancestors[vocab_id]:
                vocab_marks.setdefault(ancestor, []).append(index)
        system_marks: dict[str, list[int]] = {s: [i] for i, s in enumerate(encoding.system_ids)}
        if n_systems:
            system_marks[encoding.phenotypic_abnormality] = list(range(n_systems))
        excluded_rows = {hpo_id: row for row, hpo_id in enumerate(dict.fromkeys([*vocab_marks, *system_marks]))}
        vocabulary_absent = np.zeros((len(excluded_rows), n_vocab), dtype=np.bool_)
        systems_absent = np.zeros((len(excluded_rows), n_systems), dtype=np.bool_)
        for hpo_id, row in excluded_rows.items():
            vocabulary_absent[row, vocab_marks.get(hpo_id, [])] = True
            systems_absent[row, system_marks.get(hpo_id, [])] = True

        specific = ic >= round(encoding.specific_term_ic * IC_SCALE)
        specific[n_terms] = False  # an id outside the release has no information content (NULL in the SQL)
        return cls(
            n_vocabulary=n_vocab,
            n_systems=n_systems,
            terms=terms,
            unknown_row=n_terms,
            vocabulary_present=vocabulary_present,
            systems_present=systems_present,
            ic_millionths=ic,
            specific=specific,
            excluded_rows=excluded_rows,
            vocabulary_absent=vocabulary_absent,
            systems_absent=systems_absent,
        )
