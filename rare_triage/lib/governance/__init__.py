"""The governance domain: validation and quarantine, Safe Harbor anonymization, k-anonymity, anonymized schemas."""
