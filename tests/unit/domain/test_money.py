"""Money: exact, currency-aware, never a float, and allocation never loses a minor unit."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from retailsync.domain import (
    CURRENCY_MINOR_UNITS,
    CurrencyMismatch,
    FloatNotAllowed,
    Money,
    OrderLine,
    UnknownCurrency,
)
from retailsync.domain.errors import InvalidMoney
from retailsync.schemas.strategies import currencies

units = st.integers(min_value=-(10**12), max_value=10**12)


def amounts(currency: str) -> st.SearchStrategy[Money]:
    return units.map(lambda value: Money.from_minor_units(value, currency))


same_currency_triples = currencies.flatmap(
    lambda code: st.tuples(amounts(code), amounts(code), amounts(code))
)
ratios = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=1000),
        st.decimals(min_value=0, max_value=100, places=3, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
).filter(lambda values: sum(values) > 0)


@given(currencies.flatmap(amounts), ratios)
def test_allocate_never_loses_a_minor_unit(whole: Money, shares: list[int | Decimal]) -> None:
    parts = whole.allocate(shares)
    assert len(parts) == len(shares)
    assert Money.total(parts, whole.currency) == whole
    total_ratio = sum((Fraction(share) for share in shares), Fraction(0))
    for part, share in zip(parts, shares, strict=True):
        exact = Fraction(whole.minor_units) * Fraction(share) / total_ratio
        assert abs(Fraction(part.minor_units) - exact) < 1
        assert part.currency == whole.currency


@given(currencies.flatmap(amounts), st.integers(min_value=1, max_value=50))
def test_split_parts_differ_by_at_most_one_minor_unit(whole: Money, count: int) -> None:
    parts = whole.split(count)
    assert Money.total(parts, whole.currency) == whole
    sizes = [part.minor_units for part in parts]
    assert max(sizes) - min(sizes) <= 1


@given(same_currency_triples)
def test_addition_is_associative_and_subtraction_undoes_it(triple: tuple[Money, ...]) -> None:
    a, b, c = triple
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b) - b == a
    assert a - a == Money.zero(a.currency)
    negated = -a
    assert -negated == a
    assert a + (-a) == Money.zero(a.currency)
    assert (a < b) == (a.amount < b.amount)
    assert (a >= b) == (a.amount >= b.amount)


@given(same_currency_triples)
def test_json_round_trip_keeps_exact_amount(triple: tuple[Money, ...]) -> None:
    for money in triple:
        text = money.model_dump_json()
        assert isinstance(json.loads(text)["amount"], str)
        assert Money.model_validate_json(text) == money


def test_allocation_example_gives_the_extra_cent_to_the_first_part() -> None:
    parts = Money.of("100.00", "EUR").allocate([1, 1, 1])
    assert [str(part) for part in parts] == ["33.34 EUR", "33.33 EUR", "33.33 EUR"]
    assert [str(p) for p in Money.of("0.05", "USD").allocate([3, 7])] == ["0.02 USD", "0.03 USD"]
    assert [str(p) for p in Money.of("-0.05", "USD").split(2)] == ["-0.03 USD", "-0.02 USD"]
    assert [str(p) for p in Money.of(100, "JPY").allocate([1, 2])] == ["33 JPY", "67 JPY"]


def test_allocate_refuses_bad_ratios() -> None:
    whole = Money.of("10.00", "EUR")
    with pytest.raises(ValueError, match="at least one ratio"):
        whole.allocate([])
    with pytest.raises(ValueError, match="must not all be zero"):
        whole.allocate([0, 0])
    with pytest.raises(ValueError, match="must not be negative"):
        whole.allocate([1, -1])
    with pytest.raises(FloatNotAllowed):
        whole.allocate([0.5, 0.5])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("amount", "currency", "factor", "expected"),
    [
        ("0.05", "USD", Decimal("0.5"), "0.02"),  # 0.025 -> half to even
        ("0.15", "USD", Decimal("0.5"), "0.08"),  # 0.075 -> half to even
        ("1.50", "EUR", 3, "4.50"),
        ("5", "JPY", Decimal("0.5"), "2"),  # 2.5 -> 2
        ("7", "JPY", Decimal("0.5"), "4"),  # 3.5 -> 4
        ("1.005", "KWD", Decimal("0.5"), "0.502"),  # 0.5025 -> 0.502
        ("19.99", "EUR", Decimal("0.19"), "3.80"),  # 3.7981
    ],
)
def test_multiply_rounds_half_even_to_the_minor_unit(
    amount: str, currency: str, factor: int | Decimal, expected: str
) -> None:
    result = Money.of(amount, currency) * factor
    assert result == Money.of(expected, currency)
    assert str(result.amount) == expected
    assert factor * Money.of(amount, currency) == result


def test_currency_table_knows_minor_units() -> None:
    assert CURRENCY_MINOR_UNITS["JPY"] == 0
    assert CURRENCY_MINOR_UNITS["EUR"] == 2
    assert CURRENCY_MINOR_UNITS["USD"] == 2
    assert CURRENCY_MINOR_UNITS["KWD"] == 3
    assert Money.of("10", "USD").model_dump(mode="json") == {"amount": "10.00", "currency": "USD"}
    assert Money.of("10", "KWD").model_dump(mode="json")["amount"] == "10.000"
    assert Money.of("10", "JPY").model_dump(mode="json")["amount"] == "10"
    assert Money.from_minor_units(1230, "EUR") == Money.of("12.30", "EUR")
    assert Money.of("12.30", "EUR").minor_units == 1230


@pytest.mark.parametrize(
    "call",
    [
        lambda: Money.of(1.5, "USD"),  # type: ignore[arg-type]
        lambda: Money.of("1.00", "USD") * 1.5,  # type: ignore[operator]
        lambda: Money.of("1.00", "USD") + 1.0,  # type: ignore[operator]
        lambda: Money.of("1.00", "USD").multiply(0.1),  # type: ignore[arg-type]
        lambda: 0.5 * Money.of("1.00", "USD"),  # type: ignore[operator]
    ],
)
def test_floats_are_refused_in_arithmetic(call: object) -> None:
    with pytest.raises(FloatNotAllowed, match="floats cannot represent money exactly"):
        call()  # type: ignore[operator]


def test_floats_are_refused_on_input() -> None:
    with pytest.raises(ValidationError, match="floats cannot represent money exactly"):
        Money(amount=0.1, currency="EUR")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="floats cannot represent money exactly"):
        Money.model_validate_json('{"amount": 0.1, "currency": "EUR"}')
    with pytest.raises(ValidationError, match="floats cannot represent money exactly"):
        OrderLine.model_validate(
            {
                "line_no": 1,
                "sku": "A",
                "quantity": 1,
                "unit_price": {"amount": 9.99, "currency": "EUR"},
                "line_total": {"amount": "9.99", "currency": "EUR"},
                "tax": {"amount": "0", "currency": "EUR"},
            }
        )


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("1.5", "JPY", "more decimals than JPY allows"),
        ("1.005", "USD", "more decimals than USD allows"),
        ("abc", "USD", "plain decimals"),
        ("NaN", "USD", "plain decimals"),
        ("1e3", "USD", "plain decimals"),
        ("1234567890123456", "USD", "15 integer digits"),
        (True, "USD", "boolean"),
    ],
)
def test_bad_amounts_are_refused(amount: object, currency: str, message: str) -> None:
    with pytest.raises((ValidationError, InvalidMoney), match=message):
        Money(amount=amount, currency=currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["usd", "XXX", "EURO", ""])
def test_unknown_currency_is_refused(code: str) -> None:
    with pytest.raises(UnknownCurrency, match="ISO 4217"):
        Money.of("1", code)
    with pytest.raises(ValidationError, match="unknown currency"):
        Money(amount=Decimal(1), currency=code)


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a >= b,
        lambda a, b: Money.total([a, b], "EUR"),
    ],
)
def test_currency_mismatch_names_both_currencies(operation: object) -> None:
    eur, usd = Money.of("1.00", "EUR"), Money.of("1.00", "USD")
    with pytest.raises(CurrencyMismatch) as caught:
        operation(eur, usd)  # type: ignore[operator]
    assert "EUR" in str(caught.value) and "USD" in str(caught.value)
    assert {caught.value.left, caught.value.right} == {"EUR", "USD"}


def test_money_is_immutable_and_hashable() -> None:
    price = Money.of("9.99", "EUR")
    with pytest.raises(ValidationError):
        price.amount = Decimal("1.00")  # type: ignore[misc]
    assert {price, Money.of("9.990", "EUR")} == {price}
    assert Money.of("0", "EUR") == -Money.of("0", "EUR")
    assert str(abs(Money.of("-2.50", "EUR"))) == "2.50 EUR"
