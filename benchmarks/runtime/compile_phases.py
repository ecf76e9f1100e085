"""Where a first start with an empty compile cache spends its time, phase by phase.

Each round runs a fresh interpreter pinned to one core that does what the compiler child
does, in order, and reports CPU seconds (user + system, which other jobs on the machine
disturb less than wall time) per phase: import numpy and joblib, unpickle the model (which
imports scikit-learn and scipy), warm up the native model, import skl2onnx, convert, import
onnxruntime and open the session. The server process's own start (~0.3 s with a warm cache,
see startup.py) comes on top.

usage: .venv/bin/python benchmarks/runtime/compile_phases.py [--rounds 5] [--core 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BENCH, SERVER_CORE, train

CHILD = r"""
import json, resource, sys
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
phases, last = {}, cpu()
def phase(name):
    global last
    now = cpu()
    phases[name], last = now - last, now
import numpy as np, joblib; phase("numpy + joblib")
model = joblib.load(sys.argv[1]); phase("unpickle (imports sklearn, scipy)")
x = np.zeros((1, model.n_features_in_))
for _ in range(9):
    model.predict(x); model.predict_proba(x)
phase("native warm-up, 9 rounds")
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType; phase("import skl2onnx")
onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))])
phase("convert")
import onnxruntime
onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
phase("onnxruntime + session")
print(json.dumps(phases))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", default=SERVER_CORE)
    args = parser.parse_args()
    models = train(BENCH / "models")
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for model, (directory, _) in models.items():
            output = subprocess.run(
                ["taskset", "-c", args.core, sys.executable, "-c", CHILD,
                 str(directory / "model.joblib")],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            for phase, seconds in json.loads(output.splitlines()[-1]).items():
                results.setdefault(model, {}).setdefault(phase, []).append(seconds)
    names = list(next(iter(results.values())))
    print("| phase (CPU s, median) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{statistics.median(results[m][name]):.2f}" for m in results]
        print(f"| {name} | " + " | ".join(cells) + " |")
    rounds = {m: zip(*results[m].values(), strict=True) for m in results}
    totals = [f"{statistics.median(sum(r) for r in rounds[m]):.2f}" for m in results]
    print("| total | " + " | ".join(totals) + " |")


if __name__ == "__main__":
    main()
