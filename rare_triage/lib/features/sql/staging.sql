-- Staging of build_encounter_features, run statement by statement on a private cursor.
-- Inputs are registered as rt_feat_in_<table> (anonymized tables, ontology tables) and rt_feat_<lookup>
-- (vocab_index, system_index, vital_codes, acuity, score_roots, score_extra); see features.py.
-- A template: features.py fills the two constants in braces.

-- encounters typed, eid = position in the input
CREATE OR REPLACE TEMP TABLE rt_feat_enc AS
SELECT
    CAST(_row AS BIGINT) AS eid,
    CAST(encounter_key AS VARCHAR) AS encounter_key,
    CAST(patient_key AS VARCHAR) AS patient_key,
    CAST(partition_day AS VARCHAR) AS partition_day,
    CAST(sex AS VARCHAR) AS sex,
    CAST(age_band AS VARCHAR) AS age_band,
    CAST(centre_id AS VARCHAR) AS centre_id,
    CAST(centre_level AS VARCHAR) AS centre_level,
    CAST(region AS VARCHAR) AS region,
    CAST(consultation_type AS VARCHAR) AS consultation_type,
    CAST(age_years AS DOUBLE) AS age_years,
    CAST(prior_visits_365d AS DOUBLE) AS prior_visits_365d
FROM rt_feat_in_encounters;

-- symptoms keyed by eid (rows of unknown encounters drop out here)
CREATE OR REPLACE TEMP TABLE rt_feat_sym AS
SELECT
    e.eid,
    CAST(s.hpo_id AS VARCHAR) AS hpo_id,
    CAST(s.present AS BOOLEAN) AS present,
    CAST(s.severity AS DOUBLE) AS severity,
    CAST(s.duration_days AS DOUBLE) AS duration_days
FROM rt_feat_in_symptoms AS s
JOIN rt_feat_enc AS e ON e.encounter_key = CAST(s.encounter_key AS VARCHAR);

-- any ORPHA diagnosis; the primary ICD10 code: the first (lowest rank, NULL rank last, then code) with an acuity
-- (rt_feat_acuity: NULL acuity, a Z code, decides nothing); the first code unknown to rt_feat_acuity when it comes
-- before the primary one (it could decide the label)
CREATE OR REPLACE TEMP TABLE rt_feat_diag AS
SELECT
    eid,
    has_orpha,
    first_known.code AS primary_icd10,
    CASE WHEN first_known IS NULL OR first_unknown < first_known THEN first_unknown.code END AS unknown_icd10
FROM (
    SELECT
        e.eid,
        bool_or(d.code_system = 'ORPHA') AS has_orpha,
        min(struct_pack(rank := coalesce(d.rank, {null_rank}), code := d.code))
            FILTER (WHERE d.code_system = 'ICD10' AND a.acuity IS NOT NULL) AS first_known,
        min(struct_pack(rank := coalesce(d.rank, {null_rank}), code := d.code))
            FILTER (WHERE d.code_system = 'ICD10' AND a.code IS NULL) AS first_unknown
    FROM (
        SELECT
            CAST(encounter_key AS VARCHAR) AS encounter_key,
            CAST(code_system AS VARCHAR) AS code_system,
            CAST(code AS VARCHAR) AS code,
            CAST(rank AS BIGINT) AS rank
        FROM rt_feat_in_diagnoses
    ) AS d
    JOIN rt_feat_enc AS e ON e.encounter_key = d.encounter_key
    LEFT JOIN rt_feat_acuity AS a ON a.code = d.code AND d.code_system = 'ICD10'
    GROUP BY e.eid
);

-- the mask bit a symptom row sets, by kind ('vocab', 'system') and state (1 present, 0 excluded): a present term
-- sets every vocabulary term it rolls up to and every system above it; an excluded term clears every vocabulary
-- term it is, or is an ancestor of; a system is explicitly absent only when it, or "Phenotypic abnormality"
-- itself, is excluded
CREATE OR REPLACE TEMP TABLE rt_feat_term_bits AS
SELECT DISTINCT CAST(r.hpo_id AS VARCHAR) AS hpo_id, 'vocab' AS kind, 1 AS state, v.chunk, v.bit
FROM rt_feat_in_term_rollup AS r
JOIN rt_feat_vocab_index AS v ON v.vocab_id = CAST(r.vocab_id AS VARCHAR)
UNION ALL
SELECT DISTINCT CAST(a.ancestor_id AS VARCHAR) AS hpo_id, 'vocab' AS kind, 0 AS state, v.chunk, v.bit
FROM rt_feat_in_vocab_ancestors AS a
JOIN rt_feat_vocab_index AS v ON v.vocab_id = CAST(a.vocab_id AS VARCHAR)
UNION ALL
SELECT DISTINCT CAST(t.hpo_id AS VARCHAR) AS hpo_id, 'system' AS kind, 1 AS state, s.chunk, s.bit
FROM rt_feat_in_term_system AS t
JOIN rt_feat_system_index AS s ON s.system_id = CAST(t.system_id AS VARCHAR)
UNION ALL
SELECT system_id AS hpo_id, 'system' AS kind, 0 AS state, chunk, bit FROM rt_feat_system_index
UNION ALL
SELECT '{phenotypic_abnormality}' AS hpo_id, 'system' AS kind, 0 AS state, chunk, bit FROM rt_feat_system_index;

-- fever / pain terms: the roots, terms rolling up to a vocabulary term under a root, caller's extras
CREATE OR REPLACE TEMP TABLE rt_feat_score_terms AS
SELECT hpo_id, bool_or(kind = 'fever') AS is_fever, bool_or(kind = 'pain') AS is_pain
FROM (
    SELECT DISTINCT CAST(r.hpo_id AS VARCHAR) AS hpo_id, k.kind
    FROM rt_feat_in_term_rollup AS r
    JOIN rt_feat_in_vocab_ancestors AS a ON CAST(a.vocab_id AS VARCHAR) = CAST(r.vocab_id AS VARCHAR)
    JOIN rt_feat_score_roots AS k ON k.root_id = CAST(a.ancestor_id AS VARCHAR)
    UNION ALL
    SELECT hpo_id, kind FROM rt_feat_score_extra
)
GROUP BY hpo_id;
