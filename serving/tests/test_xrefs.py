"""The HPO cross-reference table published with a model: read, checked, and used by the FHIR mapping."""

from types import MappingProxyType

import pytest

from serving.fhir import encounter_from_bundle
from serving.xrefs import XREFS_FORMAT, XrefTableError, xrefs_from_table

RELEASE = "2025-01-16"
SNOMED = "http://snomed.info/sct"
TABLE = {"format": XREFS_FORMAT, "hpo_release": RELEASE, "xrefs": {"SNOMEDCT": {"91175000": ["HP:0001250"]}}}


def test_a_published_table_is_a_lookup_by_system_and_code() -> None:
    assert xrefs_from_table(TABLE, RELEASE) == {("SNOMEDCT", "91175000"): ("HP:0001250",)}


def test_the_model_stores_read_only_copy_is_read_the_same() -> None:
    frozen = MappingProxyType(
        {**TABLE, "xrefs": MappingProxyType({"SNOMEDCT": MappingProxyType({"91175000": ("HP:0001250",)})})}
    )
    assert xrefs_from_table(frozen, RELEASE) == xrefs_from_table(TABLE, RELEASE)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**TABLE, "format": "other/1"}, "format 'other/1'"),
        ({**TABLE, "hpo_release": "2024-04-26"}, "HPO release '2024-04-26' is not the model's"),
        ({**TABLE, "xrefs": []}, "field 'xrefs' is not an object"),
        ({**TABLE, "xrefs": {"SNOMEDCT": {"1": "HP:0001250"}}}, r"xrefs\['SNOMEDCT'\]\['1'\] is not a list"),
    ],
    ids=["format", "release", "xrefs", "terms"],
)
def test_a_malformed_table_is_refused_naming_the_field(table: dict[str, object], message: str) -> None:
    with pytest.raises(XrefTableError, match=message):
        xrefs_from_table(table, RELEASE)


def test_a_snomed_coded_finding_becomes_its_hpo_term_with_the_table() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p", "gender": "male"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": "Patient/p"},
                    "code": {"coding": [{"system": SNOMED, "code": "91175000"}]},
                }
            },
        ],
    }
    without, report = encounter_from_bundle(bundle)
    assert without.hpo_observed == [] and report.codes_not_mapped
    with_table, _ = encounter_from_bundle(bundle, hpo_xrefs=xrefs_from_table(TABLE, RELEASE))
    assert with_table.hpo_observed == ["HP:0001250"]
