"""HL7 FHIR R4 Bundles to the raw tables: bundle index, patients and encounters, observations, conditions."""
