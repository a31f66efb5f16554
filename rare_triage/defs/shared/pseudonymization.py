"""The pseudonymization key, read from the environment when a run needs it (never stored in the repository)."""

import os

import dagster as dg

from rare_triage.lib.governance.anonymize import Pseudonymizer, load_pseudonymization_key
from rare_triage.lib.governance.kanonymity import K_ANONYMITY


class PseudonymizationResource(dg.ConfigurableResource):
    """Keyed HMAC-SHA256 pseudonyms; the key comes from RARE_TRIAGE_HMAC_KEY at run time.

    `allow_local_default` is for the embedded demo only: shared deployments leave it False so that a missing key
    is a clear error instead of a predictable pseudonym.
    """

    allow_local_default: bool = False
    k_anonymity: int = K_ANONYMITY

    def pseudonymizer(self) -> Pseudonymizer:
        return Pseudonymizer(load_pseudonymization_key(os.environ, allow_local_default=self.allow_local_default))

    def check_key(self) -> None:
        """Raise PseudonymizationKeyError (naming RARE_TRIAGE_HMAC_KEY) when the key is missing, short or public.

        `raw_ehr_extract` calls it before fetching anything, so a misconfigured deployment never stores an extract.
        """
        self.pseudonymizer()
