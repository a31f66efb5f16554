"""Incidental-finding augmentation of the training rows: copies of non-orphan rows with random vocabulary terms added.

Non-orphan patients carry findings unrelated to the visit (a stable old finding, a complaint mentioned in passing) far
more often than any synthetic source or EHR extract records them. A model that never sees them learns that a single
extra term is evidence of an orphan disease, and a clinic drowns in alarms (the robustness gate measures it: one
extra term doubled the non-orphan flag rate). Each fit (every cross-validation fold, the final fit) adds, for a share
of its own non-orphan rows, a copy with `terms` vocabulary terms drawn uniformly among those the row lacks, encoded
as the feature SQL would encode them (roll-up, organ systems, specificity counts); a share above 1 gives every row
that many copies (1.5: one copy each, a second for half of them), each with its own terms. `orphan_share` copies the
orphan rows the same way (default 0): copying only the non-orphans teaches the model that any extra term, a red flag
included, is evidence against an orphan disease. `targeted` adds, per term, a share of the non-orphan rows copied with
that one term (lib/training/targeted.py sets it from the terms the validation window shows the model over-reads).
Validation and test rows are never augmented: thresholds, gates and metrics are judged on rows as recorded.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.training.columns import ORPHAN_INDEX
from rare_triage.lib.training.robustness import PhenotypeItem, add_incidental_phenotypes, add_phenotype, already_present

MAX_SHARE = 4.0  # copies per row (either share): the fit grows with it
TARGETED_SEED_OFFSET = 7919  # targeted copies draw apart from the random ones, which stay as they were


def check_augmentation(share: float, terms: int, orphan_share: float = 0.0) -> None:
    """Raise naming the field unless both shares are in [0, MAX_SHARE] and terms >= 1."""
    for name, value in (("incidental_share", share), ("incidental_orphan_share", orphan_share)):
        if not 0.0 <= value <= MAX_SHARE:
            raise ValueError(f"{name}: must be in [0, {MAX_SHARE:g}], got {value}")
    if terms < 1:
        raise ValueError(f"incidental_terms: must be >= 1, got {terms}")


@dataclass(frozen=True)
class IncidentalAugmentation:
    """`share` of the non-orphan rows of a fit (`orphan_share` of the orphan rows) get a copy with `terms` random
    vocabulary terms among `items` (above 1: several copies per row); `targeted` (hpo_id, share) pairs: that share of
    the non-orphan rows copied with that one term (a term of `items`)."""

    items: tuple[PhenotypeItem, ...]
    share: float
    terms: int
    seed: int = 0
    orphan_share: float = 0.0
    targeted: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        check_augmentation(self.share, self.terms, self.orphan_share)
        known = {item.hpo_id for item in self.items}
        for hpo_id, share in self.targeted:
            if hpo_id not in known:
                raise ValueError(f"targeted: {hpo_id!r} is not a term of the augmentation's vocabulary")
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"targeted: the share of {hpo_id} must be in [0, 1], got {share}")

    def with_targeted(self, shares: Mapping[str, float]) -> "IncidentalAugmentation":
        """The same augmentation with these per-term shares (terms sorted, zero shares left out)."""
        return replace(self, targeted=tuple(sorted((t, float(s)) for t, s in shares.items() if s > 0)))

    def apply(self, X: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
        """The fit rows plus the augmented copies (labels repeated); unchanged when there is nothing to add."""
        y = np.asarray(y)
        if not isinstance(X, pd.DataFrame) or not len(y):
            return X, y
        frames, labels = [X.reset_index(drop=True)], [y]
        self._random_copies(X, y, frames, labels)
        self._targeted_copies(X, y, frames, labels)
        if len(frames) == 1:
            return X, y
        return pd.concat(frames, ignore_index=True), np.concatenate(labels)

    def _random_copies(self, X: pd.DataFrame, y: np.ndarray, frames: list[pd.DataFrame], labels: list[Any]) -> None:
        most = max(self.share, self.orphan_share)
        if most == 0.0 or len(self.items) < self.terms:
            return
        rng = np.random.default_rng(self.seed)
        row_share = np.where(y == ORPHAN_INDEX, self.orphan_share, self.share)
        for copy in range(math.ceil(most)):
            picked = np.flatnonzero(rng.random(len(y)) < np.clip(row_share - copy, 0.0, 1.0))
            if picked.size:
                frames.append(
                    add_incidental_phenotypes(
                        X.iloc[picked].reset_index(drop=True),
                        self.terms,
                        list(self.items),
                        seed=self.seed + 1 + copy,
                        weighted=False,
                    )
                )
                labels.append(y[picked])

    def _targeted_copies(self, X: pd.DataFrame, y: np.ndarray, frames: list[pd.DataFrame], labels: list[Any]) -> None:
        if not self.targeted:
            return
        rng = np.random.default_rng(self.seed + TARGETED_SEED_OFFSET)
        by_id = {item.hpo_id: item for item in self.items}
        non_orphan = y != ORPHAN_INDEX
        for hpo_id, share in self.targeted:
            item = by_id[hpo_id]
            picked = np.flatnonzero(non_orphan & (rng.random(len(y)) < share))
            copies = X.iloc[picked].reset_index(drop=True)
            lacking = ~already_present(copies, item)
            if lacking.any():
                add_phenotype(copies, lacking, item)
                frames.append(copies.loc[lacking].reset_index(drop=True))
                labels.append(y[picked][lacking])


def incidental_augmentation(
    items: Sequence[PhenotypeItem],
    share: float,
    terms: int,
    seed: int,
    orphan_share: float = 0.0,
    *,
    targeted_later: bool = False,
) -> IncidentalAugmentation | None:
    """The augmentation of a training configuration; None when it adds nothing (both shares 0 or no vocabulary
    item). `targeted_later`: keep it even with both shares 0 (targeted copies are to be added)."""
    check_augmentation(share, terms, orphan_share)
    if (share == orphan_share == 0.0 and not targeted_later) or not items:
        return None
    return IncidentalAugmentation(tuple(items), share, terms, seed, orphan_share)
