"""The reference domain: shipped reference data (vocabulary, Orphanet, phenopackets), loaders, HPO ontology tables."""
