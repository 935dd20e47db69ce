"""Money: an exact decimal amount in one ISO 4217 currency, and the arithmetic retail needs.

Amounts are :class:`decimal.Decimal` with at most as many decimals as the currency's minor unit
(JPY 0, EUR 2, KWD 3). Floats are refused everywhere, because ``0.1 + 0.2`` is not ``0.3``.
Products with a quantity or rate round half-to-even to the minor unit; :meth:`Money.allocate`
splits an amount by ratios so that the parts always add back up to the whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from retailsync.domain.currencies import CURRENCY_MINOR_UNITS
from retailsync.domain.errors import (
    CurrencyMismatch,
    FloatNotAllowed,
    InvalidMoney,
    UnknownCurrency,
)

__all__ = ["AMOUNT_PATTERN", "Amount", "CurrencyCode", "Money", "check_currency"]

MAX_INTEGER_DIGITS = 15
AMOUNT_PATTERN = rf"^-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,4}})?$"
_AMOUNT_RE = re.compile(AMOUNT_PATTERN)


def check_currency(code: str) -> str:
    """Return ``code`` when it is a known ISO 4217 code, else raise :class:`UnknownCurrency`."""
    if code not in CURRENCY_MINOR_UNITS:
        raise UnknownCurrency(code)
    return code


def _to_decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool):
        raise InvalidMoney(f"{where} got the boolean {value!r}; pass a decimal amount")
    if isinstance(value, float):
        raise FloatNotAllowed(value, where)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_RE.match(text):
            raise InvalidMoney(
                f"{where} got {value!r}: write amounts as plain decimals such as '12.30' "
                f"(at most {MAX_INTEGER_DIGITS} integer digits and 4 decimals)"
            )
        try:
            result = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the pattern rules this out
            raise InvalidMoney(f"{where} got {value!r}, which is not a decimal number") from exc
    else:
        raise InvalidMoney(
            f"{where} got a {type(value).__name__}; pass a str, int or decimal.Decimal"
        )
    if not result.is_finite():
        raise InvalidMoney(f"{where} got {value!r}; amounts must be finite numbers")
    if result.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidMoney(f"{where} got {value!r}; amounts are limited to 15 integer digits")
    return result


def _amount_before(value: object) -> Decimal:
    return _to_decimal(value, "Money.amount")


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount_before),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "description": "Decimal amount as a string, never a float, e.g. '12.30'",
        }
    ),
]
"""A decimal amount; JSON carries it as a string such as ``"12.30"``."""

CurrencyCode = Annotated[
    str,
    AfterValidator(check_currency),
    WithJsonSchema(
        {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 currency code"}
    ),
]
"""An ISO 4217 code from :data:`~retailsync.domain.currencies.CURRENCY_MINOR_UNITS`."""


def _factor(value: object, operation: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        if isinstance(value, float):
            raise FloatNotAllowed(value, f"Money {operation}")
        raise TypeError(
            f"Money {operation} needs an int or decimal.Decimal factor, got {type(value).__name__}"
        )
    factor = Decimal(value)
    if not factor.is_finite():
        raise InvalidMoney(f"Money {operation} got {value!r}; factors must be finite")
    return factor


class Money(BaseModel):
    """An exact amount in one currency. Immutable; arithmetic returns new values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Amount
    currency: CurrencyCode

    def model_post_init(self, context: Any, /) -> None:
        """Refuse more decimals than the currency has and normalise to its minor unit."""
        decimals = CURRENCY_MINOR_UNITS[self.currency]
        quantum = Decimal(1).scaleb(-decimals)
        exponent = self.amount.as_tuple().exponent
        assert isinstance(exponent, int)  # finite amounts only, checked on input
        if exponent < -decimals and self.amount != self.amount.quantize(quantum):
            raise InvalidMoney(
                f"{self.amount} {self.currency} has more decimals than {self.currency} allows "
                f"({decimals}); round it to the minor unit first, e.g. with Decimal.quantize"
            )
        normalised = self.amount.quantize(quantum)
        if normalised.is_zero():
            normalised = abs(normalised)
        object.__setattr__(self, "amount", normalised)

    # construction ---------------------------------------------------------------------------

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """``Money.of("12.30", "EUR")``; a float raises :class:`FloatNotAllowed` at once."""
        value = _to_decimal(amount, "Money.of")
        check_currency(currency)
        return cls(amount=value, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in ``currency``."""
        return cls.of(0, currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        """``Money.from_minor_units(1230, "EUR")`` is 12.30 EUR."""
        check_currency(currency)
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError(f"minor units must be an int, got {type(units).__name__}")
        return cls(amount=Decimal(units).scaleb(-CURRENCY_MINOR_UNITS[currency]), currency=currency)

    @classmethod
    def total(cls, amounts: Iterable[Money], currency: str) -> Money:
        """The sum of ``amounts`` (zero in ``currency`` when there are none)."""
        check_currency(currency)
        amount = Decimal(0)
        for item in amounts:
            if not isinstance(item, Money):
                raise TypeError(f"cannot add Money and {type(item).__name__}")
            if item.currency != currency:
                raise CurrencyMismatch(currency, item.currency, "add")
            amount += item.amount
        return cls(amount=amount, currency=currency)

    # properties -----------------------------------------------------------------------------

    @property
    def decimals(self) -> int:
        """Number of decimals of this currency's minor unit."""
        return CURRENCY_MINOR_UNITS[self.currency]

    @property
    def minor_units(self) -> int:
        """The amount in minor units (cents for EUR, yen for JPY, fils for KWD)."""
        return int(self.amount.scaleb(self.decimals))

    def is_zero(self) -> bool:
        """True when the amount is zero."""
        return self.amount.is_zero()

    def is_negative(self) -> bool:
        """True when the amount is below zero."""
        return self.amount < 0

    # arithmetic -----------------------------------------------------------------------------

    def _same_currency(self, other: object, operation: str) -> Money:
        if not isinstance(other, Money):
            if isinstance(other, float):
                raise FloatNotAllowed(other, f"Money {operation}")
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency, operation)
        return other

    def __add__(self, other: Money) -> Money:
        other = self._same_currency(other, "add")
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        other = self._same_currency(other, "subtract")
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(amount=abs(self.amount), currency=self.currency)

    def multiply(self, factor: int | Decimal, rounding: str = ROUND_HALF_EVEN) -> Money:
        """``self * factor`` rounded to the minor unit (half-to-even unless told otherwise)."""
        value = self.amount * _factor(factor, "multiply")
        quantum = Decimal(1).scaleb(-self.decimals)
        return Money(amount=value.quantize(quantum, rounding=rounding), currency=self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        return self.multiply(factor)

    def __rmul__(self, factor: int | Decimal) -> Money:
        return self.multiply(factor)

    def allocate(self, ratios: Sequence[int | Decimal]) -> list[Money]:
        """Split by ``ratios`` without losing a minor unit: the parts always sum to ``self``.

        Each part gets its exact share rounded down; the units left over go one each to the
        parts with the largest remainders (earliest first on a tie).
        """
        if not ratios:
            raise ValueError("allocate needs at least one ratio")
        shares = [Fraction(_factor(ratio, "allocate")) for ratio in ratios]
        if any(share < 0 for share in shares):
            raise ValueError(f"allocate ratios must not be negative, got {list(ratios)}")
        whole = sum(shares, Fraction(0))
        if whole == 0:
            raise ValueError("allocate ratios must not all be zero")
        units = self.minor_units
        sign = -1 if units < 0 else 1
        units = abs(units)
        exact = [units * share / whole for share in shares]
        parts = [int(value) for value in exact]  # floor: all values are non-negative
        left = units - sum(parts)
        by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
        for index in by_remainder[:left]:
            parts[index] += 1
        return [Money.from_minor_units(sign * part, self.currency) for part in parts]

    def split(self, count: int) -> list[Money]:
        """``count`` near-equal parts that sum to ``self``."""
        if count < 1:
            raise ValueError(f"split needs a positive count, got {count}")
        return self.allocate([1] * count)

    # comparison -----------------------------------------------------------------------------

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same_currency(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same_currency(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same_currency(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same_currency(other, "compare").amount

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
