"""How long the controller's event loop is held by its store writes, and what the writer
thread writes per second.

    .venv/bin/python bench/bench_store.py --flushes 50 --calls-per-flush 600

Each flush hands ``--calls-per-flush`` whole calls (arrived, node, ended: three records
each) to ``Controller.flush_store`` on a real SQLite file, as a busy pool's workers would
within one ``pool.store_batch_ms``; the loop's time inside ``flush_store`` is measured
(``perf_counter``), then the time until the writer thread has written everything. With
``--locked-ms`` another connection holds the write lock that long during the run (Kamailio
or ``ivr agent add`` would): the loop's figures should not move. Run it on demand, never
from pytest; a busy machine disturbs the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.config import load_settings  # noqa: E402
from ivr.controller import Controller  # noqa: E402
from ivr.store import CallStore, StoreOp, StoreWriter  # noqa: E402

T0 = 1_700_000_000.0


def one_call(i: int) -> list[StoreOp]:
    c = f"c{i}"
    return [
        ("call_arrived", c, T0 + i, {"sip_call_id": c, "worker": "w000", "from_uri": "sip:a@x",
                                     "to_uri": "sip:ivr@x", "flow": "default",
                                     "flow_version": 1}),
        ("call_node", c, T0 + i + 1, {"node": "main_menu", "node_type": "menu"}),
        ("call_ended", c, T0 + i + 2, {"reason": "normal", "hangup_by": "caller",
                                       "sip_code": 200, "sip_reason": "OK"}),
    ]


async def run(var: Path, flushes: int, per_flush: int, locked_ms: int) -> None:
    settings = load_settings(None, env={"IVR_PATHS_VAR_DIR": str(var)})
    c = Controller(settings)
    c.store = CallStore(settings.db_path)
    c.store_writer = StoreWriter(settings.db_path)
    c.store_writer.start()
    if locked_ms:
        lock = sqlite3.connect(str(settings.db_path), isolation_level=None,
                               check_same_thread=False)
        lock.execute("BEGIN IMMEDIATE")
        threading.Timer(locked_ms / 1000, lambda: lock.execute("ROLLBACK")).start()
    held: list[float] = []
    started = time.perf_counter()
    for b in range(flushes):
        for i in range(b * per_flush, (b + 1) * per_flush):
            c._store_pending.extend(one_call(i))
        t = time.perf_counter()
        c.flush_store()
        held.append(time.perf_counter() - t)
        await asyncio.sleep(0)
    await c.store_writer.drain()
    elapsed = time.perf_counter() - started
    n = c.store._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    records = flushes * per_flush * 3
    held.sort()
    print(f"{flushes} flushes of {per_flush * 3} records"
          f"{f', write lock held {locked_ms} ms by another connection' if locked_ms else ''}:")
    print(f"  loop inside flush_store: {sum(held) * 1000:.1f} ms in all, "
          f"median {held[len(held) // 2] * 1000:.3f} ms, worst {held[-1] * 1000:.3f} ms")
    print(f"  written: {n} calls ({records} records) in {elapsed:.2f} s = "
          f"{records / elapsed:,.0f} records/s; failed commits {c.store_writer.failed_commits}")
    c.store_writer.close()
    c.store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flushes", type=int, default=50)
    ap.add_argument("--calls-per-flush", type=int, default=600)
    ap.add_argument("--locked-ms", type=int, default=0)
    args = ap.parse_args()
    with TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "var", args.flushes, args.calls_per_flush, args.locked_ms))


if __name__ == "__main__":
    main()
