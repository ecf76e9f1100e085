"""Trains one of the demo's iris classifiers and saves it where the runtime will load it.

  demo_model.py DIRECTORY [VERSION]   writes DIRECTORY/model.joblib (VERSION 1 by default)

Version 2 is more regularized, as in the e2e tests' model store (tests/e2e/conftest.py):
the demo tells the two apart by the X-Model-Version header of each answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

REGULARIZATION = {"1": 1.0, "2": 0.05}


def main(directory: str, version: str = "1") -> None:
    features, labels = load_iris(return_X_y=True)
    c = REGULARIZATION[version]
    model = LogisticRegression(C=c, max_iter=1000).fit(features, labels)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, target / "model.joblib")
    print(f"trained iris LogisticRegression(C={c}), version {version} -> {target / 'model.joblib'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
