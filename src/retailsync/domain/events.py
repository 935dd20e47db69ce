"""The CloudEvents 1.0 envelope every canonical event travels in.

The payload types for each event type live in :mod:`retailsync.domain.catalogue`; this module
holds only the envelope and its extensions (correlation, causation, partition key, entity
version), so it is the one import every layer shares.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EVENT_TYPE_PREFIX = "retailsync."
#: Identifiers (id, source, type, correlation ids): printable ASCII without spaces.
VISIBLE_ASCII = r"^[!-~]+$"
#: Free text keys (subject, partition key): no control characters (C0, DEL, C1).
NO_CONTROL_CHARACTERS = "^[^\x00-\x1f\x7f-\x9f]*$"
#: The data is always a JSON object, so only JSON media types are accepted.
JSON_MEDIA_TYPE = r"^application/([a-z0-9.+-]+\+)?json( *;.*)?$"
#: Entity versions are stored as signed 64-bit integers.
MAX_ENTITY_VERSION = 2**63 - 1
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class CloudEvent(BaseModel):
    """A canonical event: CloudEvents 1.0 structured-mode JSON with the hub's extensions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=VISIBLE_ASCII)
    source: str = Field(min_length=1, max_length=500, pattern=VISIBLE_ASCII)
    type: str = Field(min_length=1, max_length=200, pattern=VISIBLE_ASCII)
    specversion: Literal["1.0"] = "1.0"
    subject: str | None = Field(default=None, max_length=500, pattern=NO_CONTROL_CHARACTERS)
    time: datetime
    datacontenttype: str = Field(default="application/json", pattern=JSON_MEDIA_TYPE)
    dataschema: str | None = Field(default=None, max_length=500, pattern=VISIBLE_ASCII)
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = Field(default=None, max_length=200, pattern=VISIBLE_ASCII)
    causationid: str | None = Field(default=None, max_length=200, pattern=VISIBLE_ASCII)
    partitionkey: str | None = Field(default=None, max_length=500, pattern=NO_CONTROL_CHARACTERS)
    entityversion: int | None = Field(default=None, ge=0, le=MAX_ENTITY_VERSION)

    @field_validator("time")
    @classmethod
    def _timezone_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone offset (RFC 3339), e.g. ...Z")
        return value

    @classmethod
    def new(
        cls,
        *,
        type: str,
        source: str,
        data: dict[str, Any],
        subject: str | None = None,
        partitionkey: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        entityversion: int | None = None,
        dataschema: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
    ) -> CloudEvent:
        """Build an event with a fresh id and the current UTC time unless given."""
        return cls(
            id=id or str(uuid.uuid4()),
            source=source,
            type=type,
            subject=subject,
            time=time or datetime.now(UTC),
            dataschema=dataschema,
            data=data,
            correlationid=correlationid,
            causationid=causationid,
            partitionkey=partitionkey if partitionkey is not None else subject,
            entityversion=entityversion,
        )

    @property
    def dedup_key(self) -> str:
        """CloudEvents identity: ``source`` + ``id`` is unique per distinct event."""
        return f"{self.source}\x1f{self.id}"

    def to_json_dict(self) -> dict[str, Any]:
        """Structured-mode JSON: extensions at top level, absent optionals left out."""
        return self.model_dump(mode="json", exclude_none=True)
