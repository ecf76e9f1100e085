"""What rendering one ModelDeployment's children costs the operator, with and without the
parsed-YAML cache (modelroll.parsed_yaml), and where a fresh render's time goes: jinja's
text or PyYAML's objects, per template. The spec is the scale benchmark's.

    PYTHONPATH=operator .venv/bin/python benchmarks/render_cost.py
"""

from __future__ import annotations

import sys
import timeit
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modelroll import parsed_yaml, render
from modelroll.config import OperatorConfig
from modelroll.tls import CA_KEY

from benchmarks.operator_scale import model_deployment


def per_call_us(call: Any, number: int = 300) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    spec = model_deployment(1)["spec"]
    context = render.RenderContext(OperatorConfig(), False, False, CA_KEY)
    owner = render.Owner("m0001", "bench", "uid-1")

    def children() -> object:
        return render.render_children(owner, spec, "abc", context)

    def uncached() -> object:
        parsed_yaml._objects = OrderedDict()  # every text new, as before the cache
        return children()

    print(f"render_children, every text new: {per_call_us(uncached):.0f} µs")
    print(f"render_children, texts seen before: {per_call_us(children):.0f} µs")
    texts: list[tuple[str, dict[str, Any]]] = []
    plain = render.render_template

    def recording(template: str, **values: Any) -> Any:
        texts.append((template, values))
        return plain(template, **values)

    render.render_template = recording
    children()
    render.render_template = plain
    for template, values in texts:
        jinja = render._environment().get_template(template)
        text = jinja.render(**values)
        jinja_us = per_call_us(lambda j=jinja, v=values: j.render(**v))
        yaml_us = per_call_us(lambda t=text: yaml.load(t, Loader=parsed_yaml.SafeLoader))
        print(f"{template}: {len(text)} bytes, jinja {jinja_us:.0f} µs, PyYAML {yaml_us:.0f} µs")


if __name__ == "__main__":
    main()
