"""Published contracts of the canonical model: JSON Schemas, the AsyncAPI document, and checks.

``export_schemas(dir)`` writes a JSON Schema per event type, per canonical model and for the
CloudEvents envelope, plus ``asyncapi.json``; ``check_compatibility(old_dir)`` lists the
breaking changes between a published set and the current code. ``strategies`` holds Hypothesis
strategies for every model and event (used by property tests; needs the dev extra).

May import ``retailsync.domain`` only.
"""

from retailsync.schemas.asyncapi import asyncapi_document
from retailsync.schemas.compat import BreakingChange, ChangeKind, check_compatibility
from retailsync.schemas.export import (
    current_schemas,
    envelope_schema,
    event_schema,
    export_schemas,
    load_schemas,
    model_schema,
)

__all__ = [
    "BreakingChange",
    "ChangeKind",
    "asyncapi_document",
    "check_compatibility",
    "current_schemas",
    "envelope_schema",
    "event_schema",
    "export_schemas",
    "load_schemas",
    "model_schema",
]
