"""Kubernetes resource quantities ("500m", "1Gi", "2e3") as exact decimals, without the client.

The same results as `kubernetes.utils.quantity.parse_quantity` for every quantity the
apiserver accepts (tests/unit/test_quantity.py compares the two), so drift comparison needs
no Kubernetes client library. Unlike that function it also rejects what the apiserver
rejects but `Decimal()` takes: "NaN", "Infinity", surrounding spaces, "1_000".
"""

from __future__ import annotations

import re
from decimal import Decimal, DecimalException

# Powers of the base (1000 or 1024) that each SI prefix stands for.
_EXPONENTS = {"n": -3, "u": -2, "m": -1, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
# Only these prefixes take the binary "i" (Ki, Mi, Gi, Ti, Pi, Ei).
_BINARY_PREFIXES = "KMGTPE"
# A signed decimal number, with an optional decimal exponent ("1.5e3").
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_quantity(quantity: object) -> Decimal:
    """The value of `quantity`; numbers are taken as they are. ValueError when it is none."""
    if isinstance(quantity, int | float | Decimal):
        return Decimal(quantity)
    text = str(quantity)
    number, suffix = _split(text)
    if not _NUMBER.fullmatch(number):
        raise ValueError(f"Invalid number format: {number}")
    value = Decimal(number)
    if not suffix:
        return value
    if suffix.endswith("i"):
        if suffix[0] not in _BINARY_PREFIXES:  # "ki", "mi", "ni" and "ui" are not binary
            raise ValueError(f"{text} has unknown suffix")
        base = 1024
    else:
        base = 1000
    try:
        return value * (base ** Decimal(_EXPONENTS[suffix[0]]))
    except DecimalException as exc:
        raise ValueError(f"Invalid quantity: {text}") from exc


def _split(text: str) -> tuple[str, str]:
    """The number and the SI suffix ("" when there is none)."""
    if len(text) >= 2 and text[-1] == "i" and text[-2] in _EXPONENTS:
        return text[:-2], text[-2:]
    if text[-1:] in _EXPONENTS:
        return text[:-1], text[-1:]
    return text, ""
