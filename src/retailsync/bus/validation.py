"""Validating a batch of incoming events one by one, so valid ones survive bad neighbours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from retailsync.bus.backend import FieldError, PublishOutcome, PublishStatus
from retailsync.bus.errors import BatchTooLarge
from retailsync.domain.events import CloudEvent


def validate_batch(
    items: Sequence[CloudEvent | Mapping[str, Any]], max_batch_size: int
) -> tuple[list[tuple[int, CloudEvent]], list[PublishOutcome]]:
    """Split ``items`` into valid events (with their index) and REJECTED outcomes."""
    if len(items) > max_batch_size:
        raise BatchTooLarge(len(items), max_batch_size)
    valid: list[tuple[int, CloudEvent]] = []
    rejected: list[PublishOutcome] = []
    for index, item in enumerate(items):
        if isinstance(item, CloudEvent):
            valid.append((index, item))
            continue
        if not isinstance(item, Mapping):
            rejected.append(
                PublishOutcome(
                    index=index,
                    status=PublishStatus.REJECTED,
                    errors=(FieldError("", "an event must be a JSON object"),),
                )
            )
            continue
        try:
            valid.append((index, CloudEvent.model_validate(dict(item))))
        except ValidationError as exc:
            errors = tuple(
                FieldError(".".join(str(p) for p in err["loc"]), err["msg"])
                for err in exc.errors(include_url=False)
            )
            source = item.get("source")
            event_id = item.get("id")
            rejected.append(
                PublishOutcome(
                    index=index,
                    status=PublishStatus.REJECTED,
                    source=source if isinstance(source, str) else None,
                    id=event_id if isinstance(event_id, str) else None,
                    errors=errors,
                )
            )
    return valid, rejected


def partition_key_of(event: CloudEvent) -> str:
    """The ordering key: the partition key, else the subject, else the event's own identity."""
    return event.partitionkey or event.subject or event.dedup_key
