"""Cost of the in-band DTMF detector, beside a baseline of merely copying the frames.

    .venv/bin/python bench/bench_dtmf.py [--seconds 60]

Prints the CPU time per minute of one leg's audio in 20 ms frames (as PJMEDIA's tap hands
them over), in the worker's 60 ms batches, and the real-time factor; the baseline is joining
and converting the same frames without detection.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from media.dtmf import InbandDtmfDetector


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    rate = 8000
    rng = np.random.default_rng(1)
    pcm = (rng.normal(0, 3000, args.seconds * rate)).astype(np.int16)
    frames = [pcm[i:i + 160].tobytes() for i in range(0, pcm.size, 160)]

    def run(detect: bool, batch: int) -> float:
        det = InbandDtmfDetector(rate)
        t0 = time.process_time()
        for i in range(0, len(frames), batch):
            samples = np.frombuffer(b"".join(frames[i:i + batch]), dtype="<i2")
            if detect:
                det.process(samples)
        return time.process_time() - t0

    print(f"{'case':38} {'cpu s':>8} {'x real time':>12}")
    for name, detect, batch in [
        ("baseline: copy frames, 60 ms batches", False, 3),
        ("detector, 20 ms frames one by one", True, 1),
        ("detector, 60 ms batches (worker)", True, 3),
        ("detector, 1 s batches", True, 50),
    ]:
        cpu = run(detect, batch)
        print(f"{name:38} {cpu:8.3f} {cpu / args.seconds:12.5f}")


if __name__ == "__main__":
    main()
