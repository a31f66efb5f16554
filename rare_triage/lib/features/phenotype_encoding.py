"""The phenotype encoding a service needs to turn HPO terms into the model's phenotype inputs, as plain data.

It travels with the ONNX file, as the version's `phenotype_encoding.json` named with its sha256 in the manifest (the
manifest is the serving contract), so a service computes
the vocabulary flags, organ-system flags, their count and the phenotype-specificity features of any submitted
HPO id exactly as the feature SQL does, without the ontology or the training stack:
- `terms`: every HPO id the release accepts (current, alternative and replaced obsolete ids) ->
  [information content, indices into `vocabulary_ids` it rolls up to, indices into `system_ids` above it];
- `vocabulary_ancestors`: per vocabulary term its is-a ancestors (itself included): an excluded term marks every
  vocabulary term it is an ancestor of as absent;
- `pain_terms` and `fever_terms`: ids whose severity is a pain or fever score; as in the feature SQL, a term
  rolling up to a vocabulary term that has one of them as ancestor counts too.
"""

from collections.abc import Sequence
from typing import Any

from rare_triage.lib import schema
from rare_triage.lib.reference.ontology import ReferenceTables

ENCODING_FORMAT = "rare-triage-phenotype-encoding/1"
IC_DECIMALS = 6  # the feature SQL sums the information content as DECIMAL(18, 6)


def phenotype_encoding(
    ref: ReferenceTables, vocabulary_ids: Sequence[str] | None = None, system_ids: Sequence[str] | None = None
) -> dict[str, Any]:
    """The encoding tables of `ref`, for the given vocabulary and system order (default: the tables' order)."""
    vocab = list(vocabulary_ids) if vocabulary_ids is not None else ref.vocabulary["hpo_id"].tolist()
    systems = list(system_ids) if system_ids is not None else ref.systems["system_id"].tolist()
    vocab_index = {hpo_id: i for i, hpo_id in enumerate(vocab)}
    system_index = {hpo_id: i for i, hpo_id in enumerate(systems)}
    terms: dict[str, list[Any]] = {
        str(hpo_id): [round(float(ic), IC_DECIMALS), [], []]
        for hpo_id, ic in zip(
            ref.term_information_content["hpo_id"], ref.term_information_content["information_content"], strict=True
        )
    }
    for hpo_id, vocab_id in zip(ref.term_rollup["hpo_id"], ref.term_rollup["vocab_id"], strict=True):
        if vocab_id in vocab_index and hpo_id in terms:
            terms[hpo_id][1].append(vocab_index[vocab_id])
    for hpo_id, system_id in zip(ref.term_system["hpo_id"], ref.term_system["system_id"], strict=True):
        if system_id in system_index and hpo_id in terms:
            terms[hpo_id][2].append(system_index[system_id])
    for entry in terms.values():
        entry[1].sort()
        entry[2].sort()
    ancestors: dict[str, list[str]] = {hpo_id: [] for hpo_id in vocab}
    for vocab_id, ancestor in zip(ref.vocab_ancestors["vocab_id"], ref.vocab_ancestors["ancestor_id"], strict=True):
        if vocab_id in ancestors:
            ancestors[vocab_id].append(str(ancestor))
    return {
        "format": ENCODING_FORMAT,
        "hpo_release": ref.hpo_release,
        "specific_term_ic": schema.SPECIFIC_TERM_IC,
        "vocabulary_ids": vocab,
        "system_ids": systems,
        "terms": terms,
        "vocabulary_ancestors": {k: sorted(v) for k, v in ancestors.items()},
        "pain_terms": sorted(ref.pain_terms["hpo_id"].astype(str)),
        "fever_terms": [schema.FEVER_HPO],
        "phenotypic_abnormality": schema.PHENOTYPIC_ABNORMALITY_HPO,
    }
