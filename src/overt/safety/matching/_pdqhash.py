"""A typed seam over the ``pdqhash`` binding of Meta's reference PDQ code (C++ via Cython).

``pdqhash`` ships no type information, so it is imported by name and its one function used here,
``compute_float``, is wrapped with the types it really has: an ``(h, w, 3)`` uint8 RGB array in,
the 256 DCT coefficients (aligned with the hash bits, most significant first) and the quality
out. The hash bits are ``coefficient > median`` (the reference's own rule), computed by the
caller, so one call gives the hash, its quality and each bit's margin.

Nothing else in Overt imports ``pdqhash``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from overt.errors import ConfigurationError

PDQ_COEFFICIENTS: Final = 256

_module: ModuleType | None = None


def _binding() -> ModuleType:
    global _module  # noqa: PLW0603 - one lazily imported module, cached
    if _module is None:
        try:
            _module = importlib.import_module("pdqhash")
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise ConfigurationError(
                "known-content matching needs the 'pdqhash' package (PDQ reference binding)"
            ) from exc
    return _module


def pdq_float(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.float64], int]:
    """The reference ``pdqFloat256FromFloatLuma`` on ``rgb``: (coefficients, quality)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("pdq_float takes an (h, w, 3) uint8 array")
    fn: Any = _binding().compute_float
    coefficients, quality = fn(np.ascontiguousarray(rgb))
    out = np.asarray(coefficients, dtype=np.float64)
    if out.shape != (PDQ_COEFFICIENTS,):  # pragma: no cover - binding contract
        raise ConfigurationError("pdqhash returned an unexpected coefficient vector")
    return out, int(quality)
