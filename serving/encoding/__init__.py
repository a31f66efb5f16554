"""The platform's feature encoding, rebuilt from a published manifest alone (numpy and msgspec only).

`Encoder(manifest, phenotype_encoding)` is built once per model load; `encode` turns `contract.Encounter`s, and
`encode_phenopacket` `contract.PublishedCase`s, into the model's float32 input matrix exactly as the platform's
features would (`rare_triage_tests/integration/test_serving_skew.py` proves it on a materialized partition).
"""

from serving.encoding.encoder import EncodedBatch, Encoder, EncodingReport
from serving.encoding.errors import EncodingContractError
from serving.encoding.input_schema import InputColumn, InputSchema
from serving.encoding.phenotype import ENCODING_FORMAT, PhenotypeEncoding

__all__ = [
    "ENCODING_FORMAT",
    "EncodedBatch",
    "Encoder",
    "EncodingContractError",
    "EncodingReport",
    "InputColumn",
    "InputSchema",
    "PhenotypeEncoding",
]
