"""Settings of the batch-file connector, validated with an error that names the bad key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retailsync.connectors.batch.errors import BatchConfigError
from retailsync.domain.orders import OrderStatus


class BatchSettings(BaseModel):
    """Where the drop folder is, how often to look, and how legacy values map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_folder: Path
    poll_interval_seconds: float = Field(default=10.0, gt=0, le=86_400)
    settle_seconds: float = Field(
        default=2.0, ge=0, description="ignore files modified more recently than this"
    )
    processed_folder_name: str = Field(default="processed", min_length=1)
    reported_by: str = Field(default="legacy-batch", min_length=1, max_length=200)
    order_reference_system: str = Field(
        default="legacy",
        min_length=1,
        description="the system whose order references the files carry (for canonical ids)",
    )
    order_status_map: dict[str, OrderStatus] = Field(
        default_factory=lambda: {status.value: status for status in OrderStatus},
        description="legacy status text (case-insensitive) -> canonical order status",
    )
    max_file_bytes: int = Field(default=50_000_000, gt=0)

    @field_validator("processed_folder_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("must be a plain folder name inside the drop folder")
        return value

    @field_validator("order_status_map")
    @classmethod
    def _lower_keys(cls, value: dict[str, OrderStatus]) -> dict[str, OrderStatus]:
        return {key.strip().lower(): status for key, status in value.items()}

    @property
    def processed_folder(self) -> Path:
        return self.drop_folder / self.processed_folder_name


def load_batch_settings(raw: Mapping[str, Any], *, prefix: str = "batch") -> BatchSettings:
    """Validate ``raw``; raise :class:`BatchConfigError` naming every bad key."""
    try:
        return BatchSettings.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [
            f"{prefix}.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise BatchConfigError("invalid connector settings: " + "; ".join(problems)) from None
