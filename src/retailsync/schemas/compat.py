"""Backward-compatibility check between a published schema set and a newer one.

Breaking: a removed event type or model, a removed field, a new required field (or a field
that became required or stopped being required), a changed type, a removed enum value, a field
that no longer accepts null. Compatible: new optional fields, new event types, new enum values,
looser constraints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from retailsync.schemas.export import Schema, SchemaSet, current_schemas, load_schemas

__all__ = ["BreakingChange", "ChangeKind", "check_compatibility"]

_MAX_DEPTH = 32


class ChangeKind(StrEnum):
    """The kinds of breaking change the checker reports."""

    REMOVED_EVENT_TYPE = "removed_event_type"
    REMOVED_SCHEMA = "removed_schema"
    REMOVED_FIELD = "removed_field"
    NEW_REQUIRED_FIELD = "new_required_field"
    BECAME_REQUIRED = "became_required"
    NO_LONGER_REQUIRED = "no_longer_required"
    TYPE_CHANGED = "type_changed"
    REMOVED_ENUM_VALUE = "removed_enum_value"
    NULL_NO_LONGER_ALLOWED = "null_no_longer_allowed"


@dataclass(frozen=True)
class BreakingChange:
    """One change that would break a producer or consumer of the old schema."""

    schema: str
    """The schema file, e.g. ``events/retailsync.order.created.json``."""
    path: str
    """The field, e.g. ``order.lines[].sku`` (empty for the whole schema)."""
    kind: ChangeKind
    detail: str

    def __str__(self) -> str:
        where = f"{self.schema} {self.path}".strip() if self.path else self.schema
        return f"{where}: {self.kind.value}: {self.detail}"


def _resolve(node: Any, root: Schema) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {key: value for key, value in node.items() if key != "$ref"}
        node = {**target, **extra} if extra else target
        seen += 1
        if seen > 50:
            raise ValueError(f"$ref chain too long at {ref}")
    return node


def _branches(node: Any, root: Schema) -> tuple[list[Any], bool]:
    """The non-null alternatives of a node and whether null is accepted."""
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return [node], False
    options = node.get("anyOf") or node.get("oneOf")
    if options is None:
        types = node.get("type")
        if isinstance(types, list) and "null" in types:
            rest = [t for t in types if t != "null"]
            return [{**node, "type": rest[0] if len(rest) == 1 else rest}], True
        return [node], node.get("type") == "null"
    branches: list[Any] = []
    nullable = False
    for option in options:
        sub, sub_null = _branches(option, root)
        nullable = nullable or sub_null
        branches.extend(b for b in sub if not (isinstance(b, dict) and b.get("type") == "null"))
    return branches, nullable


def _types(node: Any) -> frozenset[str]:
    if not isinstance(node, dict):
        return frozenset()
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    if "properties" in node:
        return frozenset({"object"})
    if "items" in node:
        return frozenset({"array"})
    values = node.get("enum", [node["const"]] if "const" in node else [])
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
    return frozenset(names.get(type(value).__name__, "object") for value in values)


def _enum(node: Any) -> list[Any] | None:
    if not isinstance(node, dict):
        return None
    if "enum" in node:
        return list(node["enum"])
    if "const" in node:
        return [node["const"]]
    return None


class _Comparer:
    def __init__(self, name: str, old_root: Schema, new_root: Schema) -> None:
        self.name = name
        self.old_root = old_root
        self.new_root = new_root
        self.changes: list[BreakingChange] = []

    def report(self, path: str, kind: ChangeKind, detail: str) -> None:
        self.changes.append(BreakingChange(self.name, path, kind, detail))

    def compare(self, old: Any, new: Any, path: str) -> None:
        old_branches, old_null = _branches(old, self.old_root)
        new_branches, new_null = _branches(new, self.new_root)
        if old_null and not new_null:
            self.report(path, ChangeKind.NULL_NO_LONGER_ALLOWED, "null was accepted before")
        if len(old_branches) == 1 and len(new_branches) == 1:
            self._compare_one(old_branches[0], new_branches[0], path)
            return
        for old_branch in old_branches:
            match = [b for b in new_branches if _types(b) == _types(old_branch)]
            if not match:
                self.report(
                    path,
                    ChangeKind.TYPE_CHANGED,
                    f"no longer accepts {'/'.join(sorted(_types(old_branch))) or 'a variant'}",
                )
            else:
                self._compare_one(old_branch, match[0], path)

    def _compare_one(self, old: Any, new: Any, path: str) -> None:
        if path.count(".") + path.count("[]") > _MAX_DEPTH:
            return  # a recursive schema: deeper levels repeat what was already compared
        old_types, new_types = _types(old), _types(new)
        if old_types and new_types and old_types != new_types:
            self.report(
                path,
                ChangeKind.TYPE_CHANGED,
                f"type was {'/'.join(sorted(old_types))}, now {'/'.join(sorted(new_types))}",
            )
            return
        old_enum, new_enum = _enum(old), _enum(new)
        if old_enum is not None and new_enum is not None:
            for value in old_enum:
                if value not in new_enum:
                    self.report(path, ChangeKind.REMOVED_ENUM_VALUE, f"{value!r} was removed")
        elif old_enum is None and new_enum is not None:
            self.report(path, ChangeKind.TYPE_CHANGED, f"now limited to {new_enum}")
        if "object" in old_types or "properties" in old or "properties" in new:
            self._compare_object(old, new, path)
        if "array" in old_types and "items" in old and "items" in new:
            self.compare(old["items"], new["items"], f"{path}[]")

    def _compare_object(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        prefix = f"{path}." if path else ""
        for field in old_props:
            if field not in new_props:
                self.report(f"{prefix}{field}", ChangeKind.REMOVED_FIELD, "field was removed")
        for field in sorted(new_required):
            if field not in old_props:
                self.report(
                    f"{prefix}{field}",
                    ChangeKind.NEW_REQUIRED_FIELD,
                    "new required field: data without it is now rejected; make it optional "
                    "with a default, or publish a new schema version",
                )
            elif field not in old_required:
                self.report(f"{prefix}{field}", ChangeKind.BECAME_REQUIRED, "was optional")
        for field in sorted(old_required - new_required):
            if field in new_props:
                self.report(
                    f"{prefix}{field}", ChangeKind.NO_LONGER_REQUIRED, "consumers rely on it"
                )
        for field, old_field in old_props.items():
            if field in new_props:
                self.compare(old_field, new_props[field], f"{prefix}{field}")


def _as_set(schemas: str | Path | Mapping[str, Schema] | None) -> Mapping[str, Schema]:
    if schemas is None:
        return current_schemas()
    if isinstance(schemas, str | Path):
        return load_schemas(schemas)
    return schemas


def check_compatibility(
    old: str | Path | Mapping[str, Schema],
    new: str | Path | Mapping[str, Schema] | None = None,
) -> list[BreakingChange]:
    """Breaking changes from ``old`` to ``new`` (a directory or schema set; default: the code).

    An empty list means every producer and consumer of ``old`` keeps working.
    """
    old_set = _as_set(old)
    new_set: SchemaSet | Mapping[str, Schema] = _as_set(new)
    changes: list[BreakingChange] = []
    for name, old_schema in old_set.items():
        if name not in new_set:
            kind = (
                ChangeKind.REMOVED_EVENT_TYPE
                if name.startswith("events/")
                else ChangeKind.REMOVED_SCHEMA
            )
            changes.append(BreakingChange(name, "", kind, "schema no longer exists"))
            continue
        comparer = _Comparer(name, old_schema, new_set[name])
        comparer.compare(old_schema, new_set[name], "")
        changes.extend(comparer.changes)
    return changes
