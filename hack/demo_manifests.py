"""The demo's manifests for the real node, printed as YAML for `kubectl apply -f -`.

  demo_manifests.py operator                        dist/install.yaml, operator pinned
  demo_manifests.py iris STORE_DIR STORE_URL VERSION  examples/sklearn-iris.yaml, pinned,
                                                    served from the model store, canary

The real node is tainted, so everything the demo runs carries the same nodeSelector and
toleration as the e2e tests (tests/e2e/conftest.py ON_REAL_NODE).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ON_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {"modelroll.io/node": "real"},
    "tolerations": [
        {"key": "modelroll.io/real-node", "operator": "Exists", "effect": "NoSchedule"}
    ],
}
# Canary steps short enough to watch: pauses and step changes are seen at each resync.
RESYNC_SECONDS = "2"
CANARY = {
    "strategy": "Canary",
    "canary": {
        "scaleDownDelaySeconds": 5,
        # A pause counts from its step's start, replicas' start-up included.
        "steps": [{"weight": 25, "pauseSeconds": 10}, {"weight": 50, "pauseSeconds": 15}],
    },
}


def operator() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((REPO / "dist" / "install.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "modelroll-operator":
            pod = doc["spec"]["template"]["spec"]
            pod.update(ON_REAL_NODE)
            env = pod["containers"][0].setdefault("env", [])
            env.append({"name": "MODELROLL_TIMER_INTERVAL_SECONDS", "value": RESYNC_SECONDS})
    return docs


def iris(store_dir: str, store_url: str, version: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / "sklearn-iris.yaml").read_text())
    model_file = Path(store_dir, "iris", version, "model.joblib")
    body["spec"]["model"].update(
        uri=f"{store_url}/iris/{version}/model.joblib",
        version=version,
        sha256=hashlib.sha256(model_file.read_bytes()).hexdigest(),
    )
    body["spec"].update(ON_REAL_NODE)
    body["spec"]["rollout"] = CANARY
    return body


def main(args: list[str]) -> None:
    match args:
        case ["operator"]:
            print(yaml.safe_dump_all(operator()), end="")
        case ["iris", store_dir, store_url, version]:
            print(yaml.safe_dump(iris(store_dir, store_url, version)), end="")
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
