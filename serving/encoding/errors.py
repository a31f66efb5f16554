"""The one error of the encoding package."""


class EncodingContractError(ValueError):
    """The manifest's input schema or the phenotype encoding cannot drive the encoder; the message names the field.

    Raised when the encoder is built (once per model load), never while encoding: a request that passed the
    contract (`serving.contract`) always encodes.
    """
