"""Targeted augmentation: refits of the chosen candidate that add single-term copies of non-orphan training rows for
the vocabulary terms the validation window shows the model over-reads.

The random incidental copies (augmentation.py) spread over the whole vocabulary; which terms a fitted tree model
still over-reads changes from world to world (the worst single term of the main job was proteinuria, dehydration,
low back pain, hemoptysis or dysuria depending on the seed). So after the chosen candidate is fitted, calibrated and
its threshold set, each vocabulary term is added alone to the non-orphan rows of the validation window, as the
robustness gate does on the test window; every term whose flag rate exceeds `goal` times their base rate gets
`step` x (ratio - goal) more of the non-orphan training rows copied with that term (added to what earlier rounds
gave it), and the candidate is refitted, recalibrated and its threshold tuned again. Only the validation window is
read: the test window, where the gate judges, stays unseen.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

MAX_ROUNDS = 5  # each round is one more final fit
MAX_TERM_SHARE = 1.0  # one targeted copy per non-orphan row at most, per term


def check_targeted(rounds: int, goal: float, step: float) -> None:
    """Raise naming the field unless 0 <= rounds <= MAX_ROUNDS, goal >= 1 and 0 < step <= 1."""
    if not 0 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"targeted_rounds: must be in [0, {MAX_ROUNDS}], got {rounds}")
    if not goal >= 1.0:
        raise ValueError(f"targeted_goal: must be >= 1 (a ratio to the base flag rate), got {goal}")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"targeted_step: must be in (0, 1], got {step}")


@dataclass(frozen=True)
class TargetedRound:
    """The per-term measurement on the validation window after fit `round` (0: the fit before any targeted copy),
    and the targeted shares the next fit takes."""

    round: int
    base_flag_rate: float
    worst_term: str
    worst_label: str
    worst_ratio: float
    terms_over_goal: int
    terms_targeted: int  # terms with a targeted share for the next fit (0 after the last round)
    targeted_share: float  # their shares summed: extra copies per non-orphan training row

    def row(self) -> dict[str, Any]:
        return asdict(self)


def raised_shares(shares: Mapping[str, float], per_term: pd.DataFrame, goal: float, step: float) -> dict[str, float]:
    """`shares` (hpo_id -> share of the non-orphan rows) raised by step x (ratio - goal) for each term of `per_term`
    (robustness.PER_TERM_COLUMNS) whose ratio to the base flag rate exceeds `goal`; capped at MAX_TERM_SHARE."""
    out = dict(shares)
    over = per_term.loc[per_term["ratio_to_base"] > goal]
    for hpo_id, ratio in zip(over["hpo_id"], over["ratio_to_base"], strict=True):
        out[str(hpo_id)] = min(out.get(str(hpo_id), 0.0) + step * (float(ratio) - goal), MAX_TERM_SHARE)
    return out


def measured_round(
    round_: int, per_term: pd.DataFrame, base_flag_rate: float, goal: float, next_shares: Mapping[str, float]
) -> TargetedRound:
    """The record of one measurement (`per_term` sorted worst first, as per_term_flag_rates returns it)."""
    worst = per_term.iloc[0] if len(per_term) else None
    return TargetedRound(
        round=round_,
        base_flag_rate=base_flag_rate,
        worst_term=str(worst["hpo_id"]) if worst is not None else "",
        worst_label=str(worst.get("label", "")) if worst is not None else "",
        worst_ratio=float(worst["ratio_to_base"]) if worst is not None else float("nan"),
        terms_over_goal=int((per_term["ratio_to_base"] > goal).sum()),
        terms_targeted=len(next_shares),
        targeted_share=float(sum(next_shares.values())),
    )
