"""Version-aware merging of what events say about one entity (pure functions).

Events of one entity can arrive late or twice. A newer version (by the entity version the
event carries) overrides what the read model holds; an older or equal one only fills in what
is still unknown, so a late ``order.created`` adds the lines without taking the status back.
Values an event does not carry (``None``) never erase known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Merged", "is_newer", "merge_facts"]


def is_newer(incoming: int | None, current: int | None) -> bool:
    """True when a fact of version ``incoming`` should override one of version ``current``."""
    if current is None:
        return True
    return incoming is not None and incoming > current


def _known(value: Any) -> bool:
    return value is not None and value != [] and value != {}


@dataclass(frozen=True)
class Merged:
    document: dict[str, Any]
    version: int | None
    changed: bool


def merge_facts(
    current: Mapping[str, Any] | None,
    current_version: int | None,
    incoming: Mapping[str, Any],
    incoming_version: int | None,
) -> Merged:
    """The entity's document after applying ``incoming`` (version ``incoming_version``)."""
    facts = {key: value for key, value in incoming.items() if _known(value)}
    if current is None:
        return Merged(dict(facts), incoming_version, True)
    if is_newer(incoming_version, current_version):
        document = {**current, **facts}
        version = incoming_version if incoming_version is not None else current_version
    else:
        document = {**current, **{k: v for k, v in facts.items() if not _known(current.get(k))}}
        version = current_version
    return Merged(document, version, document != dict(current) or version != current_version)
