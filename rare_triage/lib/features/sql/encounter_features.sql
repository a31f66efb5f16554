-- One row per encounter, in input order, after staging.sql. A template: features.py fills the parts in
-- braces (aggregates and columns generated from the vocabulary, systems and vital codes).
-- Vocabulary and system flags travel as UBIGINT bit masks (<kind>_present_<chunk>, <kind>_absent_<chunk>, 64
-- columns per chunk): a handful of bit_or aggregates instead of one filtered aggregate per column.
WITH vitals_agg AS (
    SELECT
        e.eid,
        {vital_aggregates},
        max(v.value) FILTER (WHERE c.feature = '{pain_feature}') AS vital_pain_score
    FROM (
        SELECT
            CAST(encounter_key AS VARCHAR) AS encounter_key,
            CAST(loinc_code AS VARCHAR) AS loinc_code,
            CAST(value AS DOUBLE) AS value
        FROM rt_feat_in_vitals
    ) AS v
    JOIN rt_feat_vital_codes AS c ON c.loinc_code = v.loinc_code
    JOIN rt_feat_enc AS e ON e.encounter_key = v.encounter_key
    GROUP BY e.eid
),

symptoms_agg AS (
    SELECT
        s.eid,
        max(s.severity) FILTER (WHERE t.is_fever) AS fever_score,
        max(s.severity) FILTER (WHERE t.is_pain) AS pain_score,
        max(s.duration_days) AS symptom_duration_days
    FROM rt_feat_sym AS s
    LEFT JOIN rt_feat_score_terms AS t ON t.hpo_id = s.hpo_id
    WHERE s.present
    GROUP BY s.eid
),

phenotype_specificity AS (
    -- information content as DECIMAL: an exact sum, the same whatever order DuckDB's threads add in
    SELECT
        p.eid,
        count(*) AS n_present_terms,
        count(*) FILTER (WHERE ic.information_content >= {specific_ic}) AS n_specific_terms,
        CAST(max(ic.information_content) AS DOUBLE) AS phenotype_ic_max,
        CAST(sum(ic.information_content) AS DOUBLE) AS phenotype_ic_sum
    FROM (SELECT DISTINCT eid, hpo_id FROM rt_feat_sym WHERE present) AS p
    LEFT JOIN (
        SELECT CAST(hpo_id AS VARCHAR) AS hpo_id, CAST(information_content AS DECIMAL(18, 6)) AS information_content
        FROM rt_feat_in_term_ic
    ) AS ic ON ic.hpo_id = p.hpo_id
    GROUP BY p.eid
),

comorbidities_agg AS (
    SELECT e.eid, count(DISTINCT CAST(c.icd10_code AS VARCHAR)) AS comorbidity_count
    FROM rt_feat_in_comorbidities AS c
    JOIN rt_feat_enc AS e ON e.encounter_key = CAST(c.encounter_key AS VARCHAR)
    GROUP BY e.eid
),

phenotype_masks AS (
    SELECT sym.eid, {mask_aggregates}
    FROM rt_feat_sym AS sym
    JOIN rt_feat_term_bits AS t ON t.hpo_id = sym.hpo_id AND t.state = CAST(sym.present AS INTEGER)
    GROUP BY sym.eid
),

joined AS (
    SELECT
        e.*,
        va.* EXCLUDE (eid),
        sa.* EXCLUDE (eid),
        ps.* EXCLUDE (eid),
        ca.* EXCLUDE (eid),
        dg.* EXCLUDE (eid),
        ac.acuity,
        pm.* EXCLUDE (eid)
    FROM rt_feat_enc AS e
    LEFT JOIN vitals_agg AS va ON va.eid = e.eid
    LEFT JOIN symptoms_agg AS sa ON sa.eid = e.eid
    LEFT JOIN phenotype_specificity AS ps ON ps.eid = e.eid
    LEFT JOIN comorbidities_agg AS ca ON ca.eid = e.eid
    LEFT JOIN phenotype_masks AS pm ON pm.eid = e.eid
    LEFT JOIN rt_feat_diag AS dg ON dg.eid = e.eid
    LEFT JOIN rt_feat_acuity AS ac ON ac.code = dg.primary_icd10
)

SELECT {select_list}
FROM joined
ORDER BY eid
