"""Exported files: one schema per event type and model, the envelope, and AsyncAPI 3.0."""

from __future__ import annotations

import json
from pathlib import Path

from retailsync.domain import CANONICAL_MODELS, EVENT_CATALOGUE
from retailsync.schemas import export_schemas, load_schemas
from retailsync.schemas.layout import ASYNCAPI_PATH, ENVELOPE_PATH, event_schema_path


def test_export_writes_every_schema_and_removes_stale_ones(tmp_path: Path) -> None:
    stale = tmp_path / "events" / "retailsync.order.teleported.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    files = export_schemas(tmp_path)
    assert not stale.exists()
    assert len(files) == len(EVENT_CATALOGUE) + len(CANONICAL_MODELS) + 2
    schemas = load_schemas(tmp_path)
    assert ENVELOPE_PATH in schemas
    for event_type in EVENT_CATALOGUE:
        assert event_schema_path(event_type) in schemas
    for model in CANONICAL_MODELS:
        assert f"models/{model.__name__}.json" in schemas
    again = export_schemas(tmp_path)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in files]


def test_asyncapi_document_describes_every_event_type(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    document = json.loads((tmp_path / ASYNCAPI_PATH).read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    channels, operations = document["channels"], document["operations"]
    messages = document["components"]["messages"]
    assert len(channels) == len(EVENT_CATALOGUE)
    for spec in EVENT_CATALOGUE.values():
        channel = channels[spec.name]
        assert channel["address"] == spec.event_type
        (reference,) = channel["messages"].values()
        message = messages[reference["$ref"].rsplit("/", 1)[-1]]
        assert message["name"] == spec.event_type
        payload_file = tmp_path / message["payload"]["$ref"]
        assert payload_file.is_file()
        assert json.loads(payload_file.read_text())["$id"] == spec.dataschema
        attributes, pinned = message["headers"]["allOf"]
        assert attributes["$ref"] == "#/components/schemas/CloudEventAttributes"
        assert pinned["properties"]["type"]["const"] == spec.event_type
        assert pinned["properties"]["dataschema"]["const"] == spec.dataschema
        operation = operations[f"publish{spec.payload.__name__}"]
        assert operation["action"] == "send"
        assert operation["channel"]["$ref"] == f"#/channels/{spec.name}"
    headers = document["components"]["schemas"]["CloudEventAttributes"]["properties"]
    for attribute in ("id", "source", "type", "specversion", "time", "dataschema"):
        assert attribute in headers
    for extension in ("correlationid", "causationid", "partitionkey", "entityversion"):
        assert extension in headers
    envelope = document["components"]["schemas"]["CloudEventEnvelope"]["$ref"]
    assert (tmp_path / envelope).is_file()
