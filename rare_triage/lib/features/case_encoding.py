"""What a published case report holds, as model inputs: its phenotype flags, age and sex. Every other input is unknown
for a case (vitals, scores, duration, visit history, comorbidity count, centre, consultation) and is encoded as
missing, never as a value such as "no comorbidity". Synthetic or logged rows encoded the same way
(`phenotype_only`) are compared with the real cases like with like."""

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import EXTERNAL_CENTRE_ID

# The model inputs a published case holds besides its hpo_* / sys_* flags.
CASE_HELD_COLUMNS = ("sex", "age_years", "age_band", "n_systems_involved", *schema.SPECIFICITY_COLUMNS)
# What an input a case does not hold is set to: the centre is the external one (a category no model has seen),
# every other categorical and every numeric is missing.
CASE_UNHELD_CATEGORICALS = {"centre_id": EXTERNAL_CENTRE_ID}


def phenotype_only(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of feature rows encoded as a published case is: phenotype flags, age and sex kept, every other model
    input missing (centre_id the external centre). Applied to the features of real cases it changes nothing."""
    out = frame.copy()
    for column in schema.FEATURE_CATEGORICAL_COLUMNS:
        if column in out.columns and column not in CASE_HELD_COLUMNS:
            out[column] = pd.Series(CASE_UNHELD_CATEGORICALS.get(column), index=out.index, dtype=object)
    for column in schema.FEATURE_NUMERIC_COLUMNS:
        if column in out.columns and column not in CASE_HELD_COLUMNS:
            out[column] = np.nan
    return out
