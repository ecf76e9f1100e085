"""Rendered YAML as objects, remembered: a reconcile renders every child again, and parsing
the text is most of that cost. Pure (memory only, no I/O).

PyYAML builds the objects in Python even with libyaml (benchmarks/render_cost.py: about
2 ms for a 4 KB Deployment, against 0.13-0.23 ms to render the template's text), and a
resync renders the same text for every settled ModelDeployment. So the object of each text
is kept, by the text's digest, as compressed compact JSON, and a text seen before costs a
digest and a JSON parse. Misses return the same JSON round trip as hits, so both give equal objects.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import OrderedDict
from typing import Any

import yaml

# libyaml's loader when present
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Texts remembered, least recently used out first: enough for every child of a few
# thousand ModelDeployments (~0.4-1.2 KB each, compressed), so a resync pass of them all
# finds each text it rendered in the pass before.
ENTRIES = 16384

_objects: OrderedDict[bytes, bytes] = OrderedDict()


def load(text: str) -> Any:
    """yaml.safe_load(text), as JSON gives it back (mappings with string keys)."""
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    packed = _objects.get(key)
    if packed is None:
        packed = zlib.compress(
            json.dumps(yaml.load(text, Loader=SafeLoader), separators=(",", ":")).encode(), 1
        )
        _objects[key] = packed
        if len(_objects) > ENTRIES:
            _objects.popitem(last=False)
    else:
        _objects.move_to_end(key)
    return json.loads(zlib.decompress(packed))
