"""Every error the canonical model raises: one class per kind of mistake.

All of them derive from :class:`DomainError`, so an entry point can turn any of them into a
problem+json response or an exception-queue record without knowing the details.
"""

from __future__ import annotations

__all__ = [
    "CurrencyMismatch",
    "DomainError",
    "EventPayloadInvalid",
    "EventTypeMismatch",
    "FloatNotAllowed",
    "IllegalCaseTransition",
    "IllegalOrderTransition",
    "IllegalPostingTransition",
    "IllegalRefundTransition",
    "IllegalReturnTransition",
    "IllegalShipmentTransition",
    "IllegalTransition",
    "InvalidIdentifier",
    "InvalidMoney",
    "MoneyError",
    "UnknownCurrency",
    "UnknownEventType",
]


class DomainError(Exception):
    """Base class for every rule of the canonical model that a caller broke."""


class MoneyError(DomainError):
    """Base class for money arithmetic and money input mistakes."""


class CurrencyMismatch(MoneyError, ValueError):
    """Two amounts in different currencies were combined or compared."""

    def __init__(self, left: str, right: str, operation: str) -> None:
        self.left = left
        self.right = right
        self.operation = operation
        super().__init__(
            f"currency mismatch ({operation}): {left} and {right}; amounts must share a "
            f"currency, convert one of them explicitly first"
        )


class UnknownCurrency(MoneyError, ValueError):
    """A currency code that is not in the ISO 4217 table the hub knows."""

    def __init__(self, code: object) -> None:
        self.code = code
        super().__init__(
            f"unknown currency {code!r}: use an upper-case ISO 4217 code such as 'EUR', "
            f"'USD' or 'JPY'"
        )


class FloatNotAllowed(MoneyError, ValueError, TypeError):
    """A binary float was offered where money or a money factor is expected.

    It is both a :class:`ValueError` (so Pydantic reports it as a validation error) and a
    :class:`TypeError` (it is the wrong type for arithmetic).
    """

    def __init__(self, value: float, where: str) -> None:
        self.value = value
        super().__init__(
            f"{where} got the float {value!r}: floats cannot represent money exactly; "
            f"pass a string or decimal.Decimal instead, e.g. Decimal('{value}')"
        )


class InvalidMoney(MoneyError, ValueError):
    """An amount that is not a finite number or has more decimals than its currency allows."""


class InvalidIdentifier(DomainError, ValueError):
    """A canonical id with the wrong prefix or shape."""


class IllegalTransition(DomainError):
    """A stateful entity was asked to move to a state its lifecycle does not allow from here."""

    entity = "entity"

    def __init__(
        self, entity_id: str, current: str, requested: str, allowed: frozenset[str]
    ) -> None:
        self.entity_id = entity_id
        self.current = current
        self.requested = requested
        self.allowed = allowed
        options = ", ".join(sorted(allowed)) if allowed else "none (it is final)"
        super().__init__(
            f"{self.entity} {entity_id} cannot go from '{current}' to '{requested}'; "
            f"allowed next states from '{current}': {options}"
        )


class IllegalOrderTransition(IllegalTransition):
    """An order status change its lifecycle forbids."""

    entity = "order"


class IllegalShipmentTransition(IllegalTransition):
    """A shipment status change its lifecycle forbids."""

    entity = "shipment"


class IllegalReturnTransition(IllegalTransition):
    """A return authorization (RMA) status change its lifecycle forbids."""

    entity = "return authorization"


class IllegalRefundTransition(IllegalTransition):
    """A refund status change its lifecycle forbids."""

    entity = "refund"


class IllegalCaseTransition(IllegalTransition):
    """A service case status change its lifecycle forbids."""

    entity = "service case"


class IllegalPostingTransition(IllegalTransition):
    """A financial posting status change its lifecycle forbids."""

    entity = "financial posting"


class UnknownEventType(DomainError, LookupError):
    """An event type name that is not in the catalogue."""

    def __init__(self, event_type: str, known: list[str]) -> None:
        self.event_type = event_type
        super().__init__(
            f"unknown event type {event_type!r}: it is not in the catalogue; known types are "
            f"{', '.join(known)}"
        )


class EventTypeMismatch(DomainError, ValueError):
    """An event was parsed with a payload model meant for a different type."""


class EventPayloadInvalid(DomainError, ValueError):
    """``event.data`` does not match the payload schema of its type."""

    def __init__(self, event_type: str, problems: list[tuple[str, str]]) -> None:
        self.event_type = event_type
        self.problems = problems
        self.fields = [field for field, _ in problems]
        detail = "; ".join(f"field '{field}': {message}" for field, message in problems)
        super().__init__(
            f"event data for {event_type!r} does not match its payload schema: {detail}"
        )
