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

from collections.abc import Iterable, Mapping
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

    mask: int  # the flags it sets: bit i vocabulary term i, bit n_vocabulary + j organ system j
    ic: int  # information content, in millionths
    specific: bool  # information content >= specific_term_ic
    sets_flag: bool  # rolls up to a vocabulary term or an organ system (mask != 0)
    is_fever: bool


@dataclass(frozen=True, eq=False)
class PhenotypeTables:
    """Lookup tables built once per model load. A request's flags are the OR of its ids' masks (Python ints, one
    bit per vocabulary term then per organ system): `terms` gives each known id's mask of what it sets present,
    `excluded_masks` each id whose exclusion marks some vocabulary term or organ system absent, what it marks."""

    n_vocabulary: int
    n_systems: int
    terms: Mapping[str, TermInfo] = field(repr=False)
    excluded_masks: Mapping[str, int] = field(repr=False)

    @classmethod
    def build(cls, encoding: PhenotypeEncoding) -> "PhenotypeTables":
        n_terms, n_vocab, n_systems = len(encoding.terms), len(encoding.vocabulary_ids), len(encoding.system_ids)
        vocabulary_present = np.zeros((n_terms, n_vocab), dtype=np.bool_)
        for row, (_, vocab, _) in enumerate(encoding.terms.values()):
            vocabulary_present[row, list(vocab)] = True

        def rolls_under(roots: frozenset[str]) -> npt.NDArray[np.bool_]:
            """Terms that are a root or roll up to a vocabulary term having a root as ancestor (the score SQL)."""
            vocab_under = np.array(
                [bool(roots.intersection(encoding.vocabulary_ancestors[v])) for v in encoding.vocabulary_ids],
                dtype=np.bool_,
            )
            under: npt.NDArray[np.bool_] = np.asarray((vocabulary_present & vocab_under).any(axis=1), dtype=np.bool_)
            under[[row for row, hpo_id in enumerate(encoding.terms) if hpo_id in roots]] = True
            return under

        fever = [bool(v) for v in rolls_under(encoding.fever_terms)]
        specific_ic = round(encoding.specific_term_ic * IC_SCALE)
        terms = {}
        for row, (hpo_id, (ic_millionths, vocab, systems)) in enumerate(encoding.terms.items()):
            mask = _mask(vocab, systems, n_vocab)
            terms[hpo_id] = TermInfo(mask, ic_millionths, ic_millionths >= specific_ic, mask != 0, fever[row])

        vocab_marks: dict[str, list[int]] = {}
        for index, vocab_id in enumerate(encoding.vocabulary_ids):
            for ancestor in encoding.vocabulary_ancestors[vocab_id]:
                vocab_marks.setdefault(ancestor, []).append(index)
        system_marks: dict[str, list[int]] = {s: [i] for i, s in enumerate(encoding.system_ids)}
        if n_systems:
            system_marks[encoding.phenotypic_abnormality] = list(range(n_systems))
        excluded_masks = {
            hpo_id: _mask(vocab_marks.get(hpo_id, ()), system_marks.get(hpo_id, ()), n_vocab)
            for hpo_id in dict.fromkeys([*vocab_marks, *system_marks])
        }
        return cls(n_vocabulary=n_vocab, n_systems=n_systems, terms=terms, excluded_masks=excluded_masks)


def _mask(vocabulary: Iterable[int], systems: Iterable[int], n_vocabulary: int) -> int:
    """The bits of vocabulary terms and organ systems (by index) in one int."""
    mask = 0
    for index in vocabulary:
        mask |= 1 << index
    for index in systems:
        mask |= 1 << (n_vocabulary + index)
    return mask
