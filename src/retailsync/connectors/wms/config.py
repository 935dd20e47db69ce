"""Settings of the WMS connector, validated with an error that names the bad key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from retailsync.connectors.wms.errors import WmsConfigError
from retailsync.domain.returns import InspectionOutcome

#: WMS inspection result -> (canonical outcome, whether the units count as accepted).
DEFAULT_INSPECTION_MAP: dict[str, InspectionOutcome] = {
    "resaleable": InspectionOutcome.RESTOCK,
    "damaged": InspectionOutcome.SCRAP,
    "missing": InspectionOutcome.NOT_RECEIVED,
}


class WmsSettings(BaseModel):
    """How to reach the WMS and how its references map to canonical ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://", description="e.g. https://wms.example.com")
    api_key: SecretStr
    webhook_secret: SecretStr
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    system_name: str = Field(default="wms", min_length=1, max_length=60)
    order_reference_system: str = Field(
        default="erp", min_length=1, description="whose order numbers the WMS carries"
    )
    rma_reference_system: str = Field(
        default="erp", min_length=1, description="whose RMA numbers the WMS carries"
    )
    inspection_map: dict[str, InspectionOutcome] = Field(
        default_factory=lambda: dict(DEFAULT_INSPECTION_MAP)
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=120.0, gt=0)
    page_size: int = Field(default=200, ge=1, le=1000)


def load_wms_settings(raw: Mapping[str, Any], *, prefix: str = "wms") -> WmsSettings:
    """Validate ``raw``; raise :class:`WmsConfigError` naming every bad key."""
    try:
        return WmsSettings.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [
            f"{prefix}.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise WmsConfigError("invalid connector settings: " + "; ".join(problems)) from None
