"""The pure quantity parser against the Kubernetes client's own `parse_quantity`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity as client_parse_quantity
from modelroll.quantity import parse_quantity

SUFFIXES = ["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E"]
SUFFIXES += ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]

# What the apiserver writes back and what manifests commonly say.
QUANTITIES = [
    "0", "1", "-1", "+1", "0.5", ".5", "5.", "500m", "100m", "1500m", "2", "250m", "1k",
    "1Ki", "256Mi", "1Gi", "1.5Gi", "0.25Ti", "2Pi", "1Ei", "1e3", "1E3", "1e-3", "1.5e+2",
    "2e3Mi", "5E", "3P", "12345678901234567890", "0.000000001", "1n", "10u", "7T", "1M",
    "123456789Ei", "-500m", "+0.1k", "00012", "1.000", "3e0",
]  # fmt: skip

# Not quantities, for both parsers.
INVALID = [
    "", "abc", "1ki", "1mi", "1ni", "1ui", "5i", "i", "Mi", "m", "1.2.3", "1e", "e3", "1Gib",
    "--1", "Gi1", "1x", "0x10", "1e3e3",
]  # fmt: skip

# Decimal() takes these, so the client's parser does; the apiserver does not, nor do we.
STRICTER = ["NaN", "Infinity", "-inf", "sNaN", " 1", "1 ", "1 Gi", "1_000", "1_000Mi"]


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_same_value_as_the_kubernetes_client(quantity: str) -> None:
    assert parse_quantity(quantity) == client_parse_quantity(quantity)


@st.composite
def quantities(draw: st.DrawFn) -> str:
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.text("0123456789", max_size=12))
    fraction = draw(st.none() | st.text("0123456789", max_size=6))
    number = whole + ("" if fraction is None else "." + fraction)
    if not number.strip("."):
        number = "0" + number
    exponent = draw(st.none() | st.integers(-20, 20))
    if exponent is not None:
        number += draw(st.sampled_from(["e", "E"])) + str(exponent)
    return sign + number + draw(st.sampled_from(SUFFIXES))


@given(quantities())
def test_generated_quantities_parse_as_the_client_parses_them(quantity: str) -> None:
    assert parse_quantity(quantity) == client_parse_quantity(quantity)


@given(st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.decimals(allow_nan=False))
def test_numbers_are_taken_as_they_are(number: int | float | Decimal) -> None:
    assert parse_quantity(number) == client_parse_quantity(number) == Decimal(number)


@pytest.mark.parametrize("text", INVALID)
def test_what_the_client_rejects_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        client_parse_quantity(text)
    with pytest.raises(ValueError):
        parse_quantity(text)


@given(st.text(max_size=8))
def test_any_text_is_rejected_or_parsed_as_the_client_parses_it(text: str) -> None:
    try:
        ours = parse_quantity(text)
    except ValueError:
        return
    assert ours == client_parse_quantity(text)


@pytest.mark.parametrize("text", STRICTER)
def test_what_decimal_takes_but_kubernetes_does_not_is_rejected(text: str) -> None:
    client_parse_quantity(text)  # taken by the client: it hands the text to Decimal()
    with pytest.raises(ValueError):
        parse_quantity(text)
