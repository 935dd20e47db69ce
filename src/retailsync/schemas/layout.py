"""Where each schema lives inside an exported schema directory."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = [
    "ASYNCAPI_PATH",
    "ENVELOPE_PATH",
    "SCHEMA_FOLDERS",
    "event_schema_path",
    "model_schema_path",
]

ENVELOPE_PATH = "envelope/cloudevent.json"
ASYNCAPI_PATH = "asyncapi.json"
SCHEMA_FOLDERS = ("envelope", "events", "models")


def event_schema_path(event_type: str) -> str:
    """Where the payload schema of ``event_type`` lives: ``events/<type>.json``."""
    return f"events/{event_type}.json"


def model_schema_path(model: type[BaseModel]) -> str:
    """Where the schema of a canonical model lives, e.g. ``models/Order.json``."""
    return f"models/{model.__name__}.json"
