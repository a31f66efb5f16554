"""Incidental-finding augmentation of the training rows: copies of non-orphan rows with random vocabulary terms added.

Non-orphan patients carry findings unrelated to the visit (a stable old finding, a complaint mentioned in passing) far
more often than any synthetic source or EHR extract records them. A model that never sees them learns that a single
extra term is evidence of an orphan disease, and a clinic drowns in alarms (the robustness gate measures it: one
extra term doubled the non-orphan flag rate). Each fit (every cross-validation fold, the final fit) adds, for a share
of its own non-orphan rows, a copy with `terms` vocabulary terms drawn uniformly among those the row lacks, encoded
as the feature SQL would encode them (roll-up, organ systems, specificity counts); a share above 1 gives every row
that many copies (1.5: one copy each, a second for half of them), each with its own terms. `orphan_share` copies the
orphan rows the same way (default 0): copying only the non-orphans teaches the model that any extra term, a red flag
included, is evidence against an orphan disease. Validation and test rows are never augmented: thresholds, gates and
metrics are judged on rows as recorded.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.training.columns import ORPHAN_INDEX
from rare_triage.lib.training.robustness import PhenotypeItem, add_incidental_phenotypes

MAX_SHARE = 4.0  # copies per row (either share): the fit grows with it


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
    vocabulary terms among `items` (above 1: several copies per row)."""

    items: tuple[PhenotypeItem, ...]
    share: float
    terms: int
    seed: int = 0
    orphan_share: float = 0.0

    def __post_init__(self) -> None:
        check_augmentation(self.share, self.terms, self.orphan_share)

    def apply(self, X: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
        """The fit rows plus the augmented copies (labels repeated); unchanged when there is nothing to add."""
        y = np.asarray(y)
        most = max(self.share, self.orphan_share)
        if most == 0.0 or len(self.items) < self.terms or not isinstance(X, pd.DataFrame) or not len(y):
            return X, y
        rng = np.random.default_rng(self.seed)
        row_share = np.where(y == ORPHAN_INDEX, self.orphan_share, self.share)
        frames, labels = [X.reset_index(drop=True)], [y]
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
        if len(frames) == 1:
            return X, y
        return pd.concat(frames, ignore_index=True), np.concatenate(labels)


def incidental_augmentation(
    items: Sequence[PhenotypeItem], share: float, terms: int, seed: int, orphan_share: float = 0.0
) -> IncidentalAugmentation | None:
    """The augmentation of a training configuration; None when it adds nothing (both shares 0 or no vocabulary
    item)."""
    check_augmentation(share, terms, orphan_share)
    if share == orphan_share == 0.0 or not items:
        return None
    return IncidentalAugmentation(tuple(items), share, terms, seed, orphan_share)
