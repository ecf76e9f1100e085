"""The operator under tracemalloc: `python benchmarks/operator_memory.py OUT` runs
`python -m modelroll` and, every 10 s that live memory is at a new high, writes the
allocation sites holding most of it (3 frames each) to OUT. operator_scale.py starts the
operator this way when BENCH_TRACEMALLOC=OUT is set. Tracing slows the operator down:
only the memory figures of such a run count.
"""

from __future__ import annotations

import runpy
import sys
import threading
import time
import tracemalloc

FRAMES = 3
EVERY_SECONDS = 10
TOP = 40


def write_top(out: str, current: int) -> None:
    snapshot = tracemalloc.take_snapshot()
    lines = [f"live {current / 2**20:.1f} MiB at {time.strftime('%H:%M:%S')}"]
    for stat in snapshot.statistics("traceback")[:TOP]:
        lines.append(f"{stat.size / 2**20:.2f} MiB in {stat.count} blocks")
        lines += [f"    {line}" for line in stat.traceback.format()]
    with open(out, "w") as file:
        file.write("\n".join(lines) + "\n")


def sample_forever(out: str) -> None:
    highest = 0
    while True:
        time.sleep(EVERY_SECONDS)
        current, _ = tracemalloc.get_traced_memory()
        if current > highest:
            highest = current
            write_top(out, current)


def main() -> None:
    out = sys.argv[1]
    tracemalloc.start(FRAMES)
    threading.Thread(target=sample_forever, args=(out,), daemon=True).start()
    sys.argv = ["modelroll"]
    runpy.run_module("modelroll", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
