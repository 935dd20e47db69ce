"""Streaming k-way merge of sorted sources: each key once, with every source's records for it.

Each source is an async iterable of *pages* (sequences of records in ascending ``key`` order
across pages). The merge holds one page per source, so memory is bounded by
``sources x page size`` whatever the total.

It works a chunk at a time rather than a record at a time: the smallest *last* key among the
current pages bounds what is safe to merge now (no source can still produce a smaller key),
so every record up to that bound is grouped by key in a dict and the keys sorted once. That
keeps the per-record work to a few C-level operations; a record-by-record heap merge was
several times slower at a million keys.
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from retailsync.reconcile.errors import UnsortedSource
from retailsync.reconcile.records import Keyed

__all__ = ["Agreement", "KeyGroup", "MergedBatch", "merge_by_key", "pages_of"]

R = TypeVar("R", bound=Keyed)


@dataclass(slots=True)
class KeyGroup(Generic[R]):
    """One key and, per source that has it, that source's records (more than one = duplicate).

    Not frozen for speed (one is built per key); treat it as immutable.
    """

    key: str
    records: Mapping[str, Sequence[R]]

    def one(self, source: str) -> R | None:
        """The source's record for this key (the first one when it is duplicated)."""
        found = self.records.get(source)
        return found[0] if found else None


Agreement = Callable[..., bool]
"""``agree(record_a, record_b, ...)`` (one record per source, in source order): True when the
key has no drift, so the merge may count it without building a group."""


class MergedBatch(list[KeyGroup[R]]):
    """A batch of groups, and how many keys the batch covered (``compared`` >= ``len``)."""

    compared: int = 0


class _Cursor(Generic[R]):
    __slots__ = ("done", "keys", "last_key", "name", "page", "pages", "position")

    def __init__(self, name: str, pages: AsyncIterable[Sequence[R]]) -> None:
        self.name = name
        self.pages = aiter(pages)
        self.page: Sequence[R] = ()
        self.keys: list[str] = []
        self.position = 0
        self.done = False
        self.last_key: str | None = None

    async def fill(self) -> None:
        """Load the next non-empty page (checking its order), or mark the source done."""
        while True:
            try:
                page = await anext(self.pages)
            except StopAsyncIteration:
                self.done = True
                self.page, self.keys, self.position = (), [], 0
                return
            if not page:
                continue
            keys = [record.key for record in page]
            if not all(map(operator.le, keys, keys[1:])):
                index = next(i for i in range(1, len(keys)) if keys[i] < keys[i - 1])
                raise UnsortedSource(self.name, keys[index - 1], keys[index])
            if self.last_key is not None and keys[0] < self.last_key:
                raise UnsortedSource(self.name, self.last_key, keys[0])
            self.last_key = keys[-1]
            self.page, self.keys, self.position = page, keys, 0
            return


def _aligned_prefix(active: Sequence[_Cursor[R]], ends: Sequence[int]) -> int:
    """How many keys from each cursor's position (before its ``end``) every source holds at the
    same offset, once each: the stretch the agreement fast path may take."""
    first = active[0]
    start = first.position
    limit = min(end - c.position for c, end in zip(active, ends, strict=True))
    if limit <= 0:
        return 0
    keys = first.keys

    def same(n: int) -> bool:
        part = keys[start : start + n]
        return all(c.keys[c.position : c.position + n] == part for c in active[1:])

    if same(limit):
        aligned = limit
    else:  # equal prefixes only grow shorter: binary search the longest one (C-level compares)
        low, high = 0, limit  # same(low) is true, same(high) is false
        while high - low > 1:
            middle = (low + high) // 2
            if same(middle):
                low = middle
            else:
                high = middle
        aligned = low
    part = keys[start : start + aligned]
    if aligned > 1 and not all(map(operator.lt, part, part[1:])):
        # A key repeated within a source: stop before the first repeat.
        aligned = next(n for n in range(aligned - 1) if part[n] >= part[n + 1])
    if aligned:
        last = keys[start + aligned - 1]
        if any(
            c.position + aligned < len(c.keys) and c.keys[c.position + aligned] == last
            for c in active
        ):
            aligned -= 1  # the last key goes on in some source: a duplicate, not for the fast path
    return aligned


async def merge_by_key(
    sources: Mapping[str, AsyncIterable[Sequence[R]]],
    *,
    batch_size: int = 1000,
    agree: Agreement | None = None,
) -> AsyncIterator[MergedBatch[R]]:
    """Yield batches of :class:`KeyGroup` in ascending key order, each key exactly once.

    Raises :class:`UnsortedSource` as soon as a source yields a key smaller than one before
    it (equal keys in a row are kept together: they are that source's duplicates). Batches
    hold at least ``batch_size`` groups except the last, and at most about one page's worth;
    ``batch.compared`` counts every key covered.

    With ``agree``, a stretch where every source holds exactly the same keys once each is
    checked record by record with ``agree`` and only disagreeing keys become groups: the
    common case of a reconciliation costs one comparison per key.
    """
    cursors = [_Cursor(name, pages) for name, pages in sources.items()]
    for cursor in cursors:
        await cursor.fill()
    batch: MergedBatch[R] = MergedBatch()
    while True:
        active = [cursor for cursor in cursors if not cursor.done]
        if not active:
            break
        bound = min(cursor.keys[-1] for cursor in active)
        if agree is not None and len(active) == len(cursors):
            # Keys strictly below the bound: a key equal to it may go on in a source's next
            # page (a duplicate across pages) and is left to the general path below.
            ends = [bisect_left(c.keys, bound, c.position) for c in active]
            aligned = _aligned_prefix(active, ends)
            if aligned:
                first = active[0]
                keys = first.keys[first.position : first.position + aligned]
                slices = [c.page[c.position : c.position + aligned] for c in active]
                names = [c.name for c in active]
                for key, *records in zip(keys, *slices, strict=True):
                    if not agree(*records):
                        batch.append(
                            KeyGroup(key, {n: [r] for n, r in zip(names, records, strict=True)})
                        )
                batch.compared += aligned
                for cursor in active:
                    cursor.position += aligned
                if len(batch) >= batch_size:
                    yield batch
                    batch = MergedBatch()
                continue
            # The sources disagree on the next key (missing somewhere, or duplicated): group
            # just that key the general way, then go back to the fast path.
            bound = min(c.keys[c.position] for c in active if c.position < len(c.keys))
        chunk: dict[str, dict[str, list[R]]] = {}
        for cursor in active:
            name = cursor.name
            while True:
                end = bisect_right(cursor.keys, bound, cursor.position)
                page = cursor.page
                for index in range(cursor.position, end):
                    record = page[index]
                    group = chunk.get(record.key)
                    if group is None:
                        chunk[record.key] = {name: [record]}
                    else:
                        held = group.get(name)
                        if held is None:
                            group[name] = [record]
                        else:
                            held.append(record)
                cursor.position = end
                if end < len(page):
                    break
                await cursor.fill()  # a page ending on the bound: its duplicates may go on
                if cursor.done or cursor.keys[0] > bound:
                    break
        for key in sorted(chunk):
            batch.append(KeyGroup(key, chunk[key]))
        batch.compared += len(chunk)
        if len(batch) >= batch_size:
            yield batch
            batch = MergedBatch()
    if batch or batch.compared:
        yield batch


async def pages_of(
    records: Iterable[R] | AsyncIterable[R], size: int = 500
) -> AsyncIterator[list[R]]:
    """Group a (sync or async) record iterator into pages of ``size`` for :func:`merge_by_key`."""
    page: list[R] = []
    if isinstance(records, AsyncIterable):
        async for record in records:
            page.append(record)
            if len(page) >= size:
                yield page
                page = []
    else:
        for record in records:
            page.append(record)
            if len(page) >= size:
                yield page
                page = []
    if page:
        yield page
