"""Hypothesis strategies for every canonical model and event payload, built from the models.

:func:`strategy_for` reads a Pydantic model's fields (types, constraints, canonical id kinds,
currencies) and builds valid instances, so a newly added model or event type is covered by the
property tests without writing a strategy by hand. All amounts inside one generated value share
one currency. Needs the ``hypothesis`` package (dev extra); only tests import this module.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from retailsync.domain.base import NonZero
from retailsync.domain.catalogue import EventPayload, build_event
from retailsync.domain.currencies import CURRENCY_MINOR_UNITS
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, IdOf, new_id
from retailsync.domain.money import Money, check_currency

__all__ = ["cloud_events", "currencies", "ids", "money", "strategy_for", "timestamps"]

M = TypeVar("M", bound=BaseModel)

_MAX_LIST = 3
_MAX_TEXT = 40

currencies = st.sampled_from(sorted(CURRENCY_MINOR_UNITS))
"""Any currency in the table."""

timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)
"""Timezone-aware instants."""


def ids(kind: EntityKind) -> st.SearchStrategy[str]:
    """Well-formed canonical ids of ``kind``."""
    return st.builds(
        new_id,
        st.just(kind),
        milliseconds=st.integers(min_value=0, max_value=2**48 - 1),
        entropy=st.binary(min_size=10, max_size=10),
    )


def money(currency: str | None = None, *, positive: bool = True) -> st.SearchStrategy[Money]:
    """Amounts in ``currency`` (any currency when ``None``); strictly positive by default."""
    lowest = 1 if positive else -(10**12)
    units = st.integers(min_value=lowest, max_value=10**12)
    if currency is None:
        return st.tuples(units, currencies).map(lambda pair: Money.from_minor_units(*pair))
    return units.map(lambda value: Money.from_minor_units(value, currency))


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    queue = list(metadata)
    while queue:
        item = queue.pop(0)
        if isinstance(item, FieldInfo):
            queue.extend(item.metadata)
            continue
        if isinstance(item, IdOf):
            found["id_kind"] = item.kind
        if isinstance(item, NonZero):
            found["non_zero"] = True
        if getattr(item, "func", None) is check_currency:
            found["currency"] = True
        for name in ("pattern", "min_length", "max_length", "ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _for_type(annotation: Any, metadata: list[Any], currency: str) -> st.SearchStrategy[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _for_type(base, [*metadata, *extra], currency)
    if origin in (Union, types.UnionType):
        options = [_for_type(arg, metadata, currency) for arg in get_args(annotation)]
        return st.one_of(*options)
    if annotation is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    found = _constraints(metadata)
    if origin is list:
        (item,) = get_args(annotation)
        lowest = found.get("min_length", 0)
        return st.lists(
            _for_type(item, [], currency),
            min_size=lowest,
            max_size=max(lowest, min(found.get("max_length", _MAX_LIST), _MAX_LIST)),
        )
    if isinstance(annotation, type):
        if issubclass(annotation, Money):
            return money(currency)
        if issubclass(annotation, BaseModel):
            return _model(annotation, currency)
        if issubclass(annotation, Enum):
            return st.sampled_from(list(annotation))
        if annotation is bool:
            return st.booleans()
        if annotation is int:
            return _integers(found)
        if annotation is str:
            return _strings(found, currency)
        if annotation in (datetime, AwareDatetime):
            return timestamps
    raise TypeError(
        f"no strategy for {annotation!r}; teach retailsync.schemas.strategies about this type"
    )


def _integers(found: dict[str, Any]) -> st.SearchStrategy[int]:
    lowest = found.get("ge", found["gt"] + 1 if "gt" in found else -(10**9))
    highest = found.get("le", found["lt"] - 1 if "lt" in found else 10**9)
    values = st.integers(min_value=lowest, max_value=highest)
    if found.get("non_zero"):
        values = values.filter(lambda value: value != 0)
    return values


def _strings(found: dict[str, Any], currency: str) -> st.SearchStrategy[str]:
    if "id_kind" in found:
        return ids(found["id_kind"])
    if found.get("currency"):
        return st.just(currency)
    if "pattern" in found:
        return st.from_regex(found["pattern"], fullmatch=True)
    lowest = found.get("min_length", 0)
    highest = max(lowest, min(found.get("max_length", _MAX_TEXT), _MAX_TEXT))
    return st.text(min_size=lowest, max_size=highest)


def _model(model: type[M], currency: str) -> st.SearchStrategy[M]:
    if issubclass(model, Money):
        return money(currency).map(model.model_validate)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        fields[name] = _for_type(info.annotation, list(info.metadata), currency)
    return st.fixed_dictionaries(fields).map(model.model_validate)


def strategy_for(model: type[M], currency: str | None = None) -> st.SearchStrategy[M]:
    """Valid instances of ``model``; every amount in one instance shares one currency."""
    if currency is not None:
        return _model(model, currency)
    return currencies.flatmap(lambda code: _model(model, code))


def cloud_events(payload_type: type[EventPayload]) -> st.SearchStrategy[CloudEvent]:
    """Events of ``payload_type``'s type, built with :func:`~retailsync.domain.build_event`."""
    return st.builds(
        build_event,
        strategy_for(payload_type),
        source=st.sampled_from(["urn:retailsync:test", "https://shop.example.com/webhooks"]),
        correlationid=st.none() | st.uuids().map(str),
    )
