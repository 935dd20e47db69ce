"""The AsyncAPI 3.0 document of the event catalogue: one channel and message per event type.

Each message's payload is a reference to the exported JSON Schema of that type
(``events/<type>.json``, next to ``asyncapi.json``); its headers are the CloudEvents context
attributes and the hub's extensions, with ``type`` and ``dataschema`` pinned per message. In
structured mode those attributes sit beside ``data`` in the JSON envelope
(``envelope/cloudevent.json``); in binary mode they travel as ``ce-`` headers.
"""

from __future__ import annotations

from typing import Any

from retailsync.domain.catalogue import EVENT_CATALOGUE, EventSpec
from retailsync.schemas.layout import ENVELOPE_PATH, event_schema_path

__all__ = ["ASYNCAPI_VERSION", "CATALOGUE_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
CATALOGUE_VERSION = "1.0.0"
"""Version of the catalogue as a whole; each type also has its own schema version."""

_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "minLength": 1, "description": "unique per source"},
    "source": {"type": "string", "minLength": 1, "description": "system that produced it"},
    "type": {"type": "string", "description": "event type, e.g. retailsync.order.created"},
    "specversion": {"type": "string", "const": "1.0"},
    "time": {"type": "string", "format": "date-time"},
    "subject": {"type": "string", "description": "the entity the event is about"},
    "datacontenttype": {"type": "string", "const": "application/json"},
    "dataschema": {"type": "string", "description": "urn:retailsync:schema:<type>:<version>"},
    "correlationid": {"type": "string", "description": "W3C trace / business correlation id"},
    "causationid": {"type": "string", "description": "id of the event that caused this one"},
    "partitionkey": {
        "type": "string",
        "description": "entity id; events with one key are delivered in order",
    },
    "entityversion": {
        "type": "integer",
        "minimum": 0,
        "description": "entity version after this event (entity-state events only)",
    },
}


def _message_name(spec: EventSpec) -> str:
    return spec.payload.__name__


def _message(spec: EventSpec) -> dict[str, Any]:
    pinned: dict[str, Any] = {
        "type": {"const": spec.event_type},
        "dataschema": {"const": spec.dataschema},
    }
    required = ["id", "source", "type", "specversion", "time"]
    if spec.kind.value == "state":
        required.append("entityversion")
    return {
        "name": spec.event_type,
        "title": spec.payload.__name__,
        "summary": spec.description,
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventAttributes"},
                {"type": "object", "properties": pinned, "required": required},
            ]
        },
        "payload": {"$ref": event_schema_path(spec.event_type)},
        "correlationId": {"$ref": "#/components/correlationIds/correlationid"},
        "x-retailsync-schema-version": spec.version,
        "x-retailsync-event-kind": spec.kind.value,
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document for every event type in the catalogue."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in EVENT_CATALOGUE.values():
        name = _message_name(spec)
        messages[name] = _message(spec)
        channels[spec.name] = {
            "address": spec.event_type,
            "title": spec.event_type,
            "description": spec.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "title": f"Publish {spec.event_type}",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "messages": [{"$ref": f"#/channels/{spec.name}/messages/{name}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Retail Sync Hub canonical events",
            "version": CATALOGUE_VERSION,
            "description": (
                "Every change the hub learns about becomes one of these CloudEvents 1.0 events. "
                "Events of one entity share a partition key and arrive in order; entity-state "
                "events carry the entity version, delta events a unique adjustment id."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {
                "CloudEventAttributes": {
                    "type": "object",
                    "description": (
                        "CloudEvents context attributes and the hub's extensions. Full envelope: "
                        f"{ENVELOPE_PATH}"
                    ),
                    "properties": _ATTRIBUTES,
                    "required": ["id", "source", "type", "specversion", "time"],
                },
                "CloudEventEnvelope": {"$ref": ENVELOPE_PATH},
            },
            "messages": messages,
            "correlationIds": {
                "correlationid": {
                    "description": "Correlation id carried through APIs, events and workflows",
                    "location": "$message.header#/correlationid",
                }
            },
        },
    }
