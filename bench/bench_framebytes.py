"""Cost of reading one 20 ms frame's buffer in a Python media port (media/framebytes.py).

    .venv/bin/python bench/bench_framebytes.py [--frames 5000]

Prints, per 20 ms frame of 8 kHz 16-bit audio (320 bytes in a ``MediaFrame.buf``), the
time of the old ``bytes(frame.buf)`` of ``_TapPort``, the element-wise ``bytes(bytearray())``
copy, and :func:`media.framebytes.vector_bytes`; and what each costs as % of one core per
leg at 50 frames a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pjsua2 as pj  # noqa: E402

from media import framebytes  # noqa: E402


def per_frame_us(read: Callable[[Any], bytes], frame: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        read(frame.buf)
    return (time.perf_counter() - t0) / n * 1e6


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=5000)
    args = ap.parse_args(argv)
    frame = pj.MediaFrame()
    vec = pj.ByteVector()
    for i in range(320):
        vec.append((i * 37 + 11) % 256)
    frame.buf = vec
    frame.size = 320
    print(f"# bench/bench_framebytes.py --frames {args.frames}")
    for name, read in (("bytes(frame.buf)", bytes),
                       ("bytes(bytearray(frame.buf))", framebytes.vector_bytes_copy),
                       ("framebytes.vector_bytes", framebytes.vector_bytes)):
        us = per_frame_us(read, frame, args.frames)
        print(f"{name:28} {us:8.1f} us per 20 ms frame  {us * 50 / 1e4:6.3f} % of a core "
              f"per leg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
