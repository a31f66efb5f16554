"""Counter-based randomness: per-patient draws that depend only on (seed, patient index, salt).

A patient's identity, disease and chronic conditions must be the same on every day without
storing anything, so they come from a SplitMix64 hash instead of a stateful generator.
"""

import numpy as np
import numpy.typing as npt

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix_scalar(value: int) -> int:
    value &= _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def hash_bits(seed: int, index: npt.ArrayLike, salt: int) -> npt.NDArray[np.uint64]:
    """64 well-mixed bits per index, a pure function of (seed, index, salt)."""
    key = np.uint64(_mix_scalar(_mix_scalar(seed) ^ (salt * _GOLDEN)))
    counters = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _mix(counters * np.uint64(_GOLDEN) + key)


def hash_uniform(seed: int, index: npt.ArrayLike, salt: int) -> npt.NDArray[np.float64]:
    """Uniform [0, 1) draws, a pure function of (seed, index, salt)."""
    return (hash_bits(seed, index, salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def hash_normal(seed: int, index: npt.ArrayLike, salt: int) -> npt.NDArray[np.float64]:
    """Standard normal draws (Box-Muller on two hashed uniforms)."""
    first = hash_uniform(seed, index, salt * 2 + 1)
    second = hash_uniform(seed, index, salt * 2 + 2)
    return np.sqrt(-2.0 * np.log1p(-first)) * np.cos(2.0 * np.pi * second)


def hash_choice(seed: int, index: npt.ArrayLike, salt: int, weights: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Index into ``weights`` drawn with probability proportional to them, per index."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    if cumulative.size == 0 or cumulative[-1] <= 0:
        raise ValueError("weights: need at least one positive weight")
    draws = hash_uniform(seed, index, salt) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, draws, side="right"), cumulative.size - 1)
