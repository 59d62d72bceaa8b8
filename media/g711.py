"""G.711 companding (ITU-T G.711), vectorised with numpy.

PJMEDIA does the codec work on real calls; these are for tests, tools and the harness that
build or inspect RTP payloads themselves.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_BIAS = 0x84  # G.711 mu-law bias (132)
_CLIP = 32635


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """16-bit linear PCM to mu-law bytes."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    byte = ~(sign | (exponent << 4) | mantissa) & 0xFF
    encoded: bytes = byte.astype(np.uint8).tobytes()
    return encoded


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """mu-law bytes to 16-bit linear PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -mag, mag).astype(np.int16)
