"""JSON Schemas of every event payload, every canonical model and the CloudEvents envelope.

A schema set is a mapping ``relative path -> JSON Schema``, the same whether it was generated
from the code (:func:`current_schemas`) or read from a directory (:func:`load_schemas`)::

    envelope/cloudevent.json
    events/retailsync.order.created.json     (one per event type; "$id" is its dataschema URI)
    models/Order.json                        (one per canonical model)
    asyncapi.json                            (written by export_schemas, not part of the set)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from retailsync.domain.catalogue import EVENT_CATALOGUE, EventSpec
from retailsync.domain.events import CloudEvent
from retailsync.domain.models import CANONICAL_MODELS
from retailsync.schemas.asyncapi import asyncapi_document
from retailsync.schemas.layout import (
    ASYNCAPI_PATH,
    ENVELOPE_PATH,
    SCHEMA_FOLDERS,
    event_schema_path,
    model_schema_path,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "Schema",
    "SchemaSet",
    "current_schemas",
    "envelope_schema",
    "event_schema",
    "export_schemas",
    "load_schemas",
    "model_schema",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]
SchemaSet = dict[str, Schema]


def event_schema(spec: EventSpec) -> Schema:
    """JSON Schema of the ``data`` of one event type."""
    schema = spec.payload.model_json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": spec.dataschema,
        **schema,
        "x-retailsync-event-type": spec.event_type,
        "x-retailsync-schema-version": spec.version,
        "x-retailsync-event-kind": spec.kind.value,
    }


def model_schema(model: type[BaseModel]) -> Schema:
    """JSON Schema of one canonical model."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:retailsync:model:{model.__name__}",
        **model.model_json_schema(mode="validation"),
    }


def envelope_schema() -> Schema:
    """JSON Schema of the CloudEvents 1.0 envelope with the hub's extensions."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": "urn:retailsync:envelope:cloudevent:1.0",
        **CloudEvent.model_json_schema(mode="validation"),
    }


def current_schemas() -> SchemaSet:
    """The schema set generated from the code as it is now."""
    schemas: SchemaSet = {ENVELOPE_PATH: envelope_schema()}
    for spec in EVENT_CATALOGUE.values():
        schemas[event_schema_path(spec.event_type)] = event_schema(spec)
    for model in CANONICAL_MODELS:
        schemas[model_schema_path(model)] = model_schema(model)
    return schemas


def _write(path: Path, document: Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def export_schemas(directory: str | Path) -> list[Path]:
    """Write the current schema set and ``asyncapi.json`` under ``directory``; return the files.

    Files of event types or models that no longer exist are removed, so the directory always
    mirrors the code and can be committed and compared later with ``check_compatibility``.
    """
    root = Path(directory)
    schemas = current_schemas()
    for sub in SCHEMA_FOLDERS:
        folder = root / sub
        if folder.is_dir():
            for stale in folder.glob("*.json"):
                if f"{sub}/{stale.name}" not in schemas:
                    stale.unlink()
    written: list[Path] = []
    for relative, schema in schemas.items():
        _write(root / relative, schema)
        written.append(root / relative)
    _write(root / ASYNCAPI_PATH, asyncapi_document())
    written.append(root / ASYNCAPI_PATH)
    return written


def load_schemas(directory: str | Path) -> SchemaSet:
    """Read a schema set written by :func:`export_schemas`."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"schema directory {root} does not exist; export it first")
    schemas: SchemaSet = {}
    for sub in SCHEMA_FOLDERS:
        for path in sorted((root / sub).glob("*.json")):
            schemas[f"{sub}/{path.name}"] = json.loads(path.read_text(encoding="utf-8"))
    if not schemas:
        raise FileNotFoundError(
            f"{root} holds no exported schemas (expected events/, models/ and envelope/); "
            f"run `retailsync schemas export {root}` first"
        )
    return schemas
