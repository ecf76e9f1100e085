"""YAML text of rendered manifests that Go's YAML readers (kubectl, Argo CD, Flux) read as meant.

PyYAML writes a string plain unless PyYAML itself would read it back as something else, but
Go's reader (sigs.k8s.io/yaml) takes more plain scalars for numbers and booleans: `903118e1`
is a float there and `y` a boolean. A revision hash in a label then fails the whole apply
with "cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string".
So every value of a label, annotation or selector map is double-quoted, and so is any other
string whose plain form a YAML reader could take for a number, a boolean or null.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

try:  # libyaml's emitter when present: a render of many ModelDeployments is megabytes of YAML.
    from yaml import CSafeDumper as _SafeDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]

# Maps whose values are label or annotation values (selectors match labels).
LABEL_MAPS = frozenset({"labels", "annotations", "matchLabels", "selector", "nodeSelector"})
# Plain scalars that may not read as strings: anything that starts like a number (ints,
# floats with or without a dot, hex, octal, timestamps, .inf, .nan) and YAML 1.1's booleans
# and nulls in any case. Quoting a few strings that would have been safe costs nothing.
_MAYBE_NOT_A_STRING = re.compile(
    r"[-+.0-9]|(?:y|n|yes|no|on|off|true|false|null|~|<<)$", re.IGNORECASE
)


class _Quoted(str):
    """A string that is always written double-quoted."""


class _ManifestDumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a manifest spells every value out: no &anchors or *aliases


def _represent_str(dumper: _ManifestDumper, data: str) -> yaml.ScalarNode:
    quoted = isinstance(data, _Quoted) or bool(_MAYBE_NOT_A_STRING.match(data))
    # str(): libyaml's emitter takes exact strings only, not the _Quoted subclass.
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", str(data), style='"' if quoted else None
    )


_ManifestDumper.add_representer(str, _represent_str)
_ManifestDumper.add_representer(_Quoted, _represent_str)


def _quote_label_values(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {
            k: _Quoted(v)
            if key in LABEL_MAPS and isinstance(v, str)
            else _quote_label_values(v, str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_quote_label_values(item) for item in node]
    return node


def dump_manifests(manifests: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream of `manifests`, keys in their given order."""
    return yaml.dump_all(
        [_quote_label_values(m) for m in manifests], Dumper=_ManifestDumper, sort_keys=False
    )
