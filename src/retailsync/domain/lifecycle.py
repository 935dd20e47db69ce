"""One generic lifecycle: a table of allowed status transitions, checked in one place.

Each stateful entity declares its table as ``{state: {next states}}`` and a :class:`Lifecycle`
built from it; ``entity.transition_to(new)`` calls :meth:`Lifecycle.advance`, which checks the
table, raises the entity's own :class:`~retailsync.domain.errors.IllegalTransition` subclass when
the move is not allowed, and returns a new instance with the status set and the version bumped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Generic, Protocol, Self, TypeVar

from retailsync.domain.errors import IllegalTransition

__all__ = ["Lifecycle", "Stateful"]

S = TypeVar("S", bound=StrEnum)


class Stateful(Protocol):
    """What :meth:`Lifecycle.advance` needs from an entity."""

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


E = TypeVar("E", bound=Stateful)


class Lifecycle(Generic[S]):
    """The allowed transitions of one entity's status, as a readable table."""

    def __init__(
        self,
        states: type[S],
        table: Mapping[S, Iterable[S]],
        error: type[IllegalTransition],
        *,
        field: str = "status",
    ) -> None:
        missing = set(states) - set(table)
        if missing:
            raise ValueError(f"lifecycle table has no row for {sorted(missing)}")
        self.states = states
        self.table: Mapping[S, frozenset[S]] = {state: frozenset(table[state]) for state in states}
        self.error = error
        self.field = field

    def allowed(self, current: S) -> frozenset[S]:
        """The states reachable from ``current`` in one step."""
        return self.table[current]

    def can(self, current: S, new: S) -> bool:
        """True when ``current -> new`` is in the table."""
        return new in self.table[current]

    def is_final(self, state: S) -> bool:
        """True when nothing follows ``state``."""
        return not self.table[state]

    def final_states(self) -> frozenset[S]:
        """States with no way out."""
        return frozenset(state for state, nxt in self.table.items() if not nxt)

    def pairs(self) -> Iterator[tuple[S, S]]:
        """Every (state, next state) combination, legal or not (for exhaustive checks)."""
        for current in self.states:
            for new in self.states:
                yield current, new

    def check(self, entity_id: str, current: S, new: S) -> None:
        """Raise the entity's :class:`IllegalTransition` unless ``current -> new`` is allowed."""
        if new not in self.table[current]:
            raise self.error(
                entity_id,
                current.value,
                new.value,
                frozenset(state.value for state in self.table[current]),
            )

    def advance(self, entity: E, new: S) -> E:
        """A copy of ``entity`` in state ``new`` with its version bumped, if the move is legal."""
        current: S = self.states(getattr(entity, self.field))
        target: S = self.states(new)
        self.check(entity.id, current, target)
        return entity.model_copy(update={self.field: target, "version": entity.version + 1})
