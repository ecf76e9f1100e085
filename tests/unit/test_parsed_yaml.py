"""Rendered YAML, remembered by its text: a hit gives what a fresh parse gives."""

from __future__ import annotations

import zlib
from collections import OrderedDict

import pytest
import yaml
from modelroll import parsed_yaml

TEXT = """\
apiVersion: v1
kind: Service
metadata:
  name: m
  labels: {"a": "b"}
spec:
  ports: [{"name": "http", "port": 80}]
  publishNotReadyAddresses: false
  sessionAffinity: null
"""


def test_a_text_seen_before_gives_the_same_object_as_a_fresh_parse() -> None:
    first = parsed_yaml.load(TEXT)
    again = parsed_yaml.load(TEXT)
    assert first == again == yaml.safe_load(TEXT)
    assert first is not again  # a fresh object each time: callers may change theirs


def test_a_changed_text_is_parsed_again() -> None:
    changed = TEXT.replace('"port": 80', '"port": 81')
    assert parsed_yaml.load(changed)["spec"]["ports"][0]["port"] == 81
    assert parsed_yaml.load(TEXT)["spec"]["ports"][0]["port"] == 80


def test_the_least_recently_used_text_goes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed_yaml, "ENTRIES", 2)
    monkeypatch.setattr(parsed_yaml, "_objects", OrderedDict())
    for port in (1, 2, 1, 3):  # 2 is the least recently used when 3 comes
        parsed_yaml.load(f"port: {port}\n")
    assert len(parsed_yaml._objects) == 2
    remembered = [zlib.decompress(v) for v in parsed_yaml._objects.values()]
    assert remembered == [b'{"port":1}', b'{"port":3}']
