"""Reading ModelDeployments from YAML files (or standard input, as "-")."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelroll import KIND


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: dict[str, Any]

    @property
    def label(self) -> str:
        name = (self.body.get("metadata") or {}).get("name", f"document {self.index + 1}")
        return f"{self.source}: {KIND} {name}"


def read_text(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def model_deployments(path: str) -> list[Document]:
    """The ModelDeployment documents of a file; other kinds are not ours to check."""
    documents = []
    for index, body in enumerate(yaml.safe_load_all(read_text(path))):
        if isinstance(body, dict) and body.get("kind") == KIND:
            documents.append(Document(path, index, body))
    return documents
