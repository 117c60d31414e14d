"""Child process of the crash test: writes fills and outbox entries, printing each acknowledgement.

    python -m tests.storage.crash_child URL PREFIX SEED

A line is printed (and flushed) only after the store call returned, i.e. after the commit: every printed
trade id / client order id must survive a SIGKILL at any later instant.
"""

from __future__ import annotations

import random
import sys
from dataclasses import replace

from storage.store import open_store
from tests.storage.conftest import make_fill, make_request


def main(argv: list[str]) -> int:
    """Write until killed (or 100,000 operations); print ``F id`` / ``O id`` acknowledgements."""
    url, prefix, seed = argv[0], argv[1], int(argv[2])
    rng = random.Random(seed)
    out = sys.stdout
    store = open_store(url)
    out.write("READY\n")
    out.flush()
    i = 0
    for _ in range(100_000):
        roll = rng.random()
        if roll < 0.6:
            fill = replace(make_fill(i), trade_id=f"{prefix}-{i}")
            store.record_fill(fill, run_id=prefix)
            out.write(f"F {fill.trade_id}\n")
            i += 1
        elif roll < 0.9:
            n = rng.randint(2, 40)
            fills = [replace(make_fill(i + k), trade_id=f"{prefix}-{i + k}") for k in range(n)]
            store.record_fills(fills, run_id=prefix)
            out.write("".join(f"F {f.trade_id}\n" for f in fills))
            i += n
        else:
            cid = f"{prefix}-c{i}"
            store.outbox_put(prefix, cid, make_request(cid))
            out.write(f"O {cid}\n")
            i += 1
        out.flush()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
