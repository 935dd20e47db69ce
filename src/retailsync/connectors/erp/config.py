"""Where the hub finds the ERP (Tryton over JSON-RPC) and how often it polls for changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from retailsync.connectors.erp.client import TrytonConnection


class ErpSettings(BaseModel):
    """``[connectors.erp]`` / ``RETAILSYNC_CONNECTORS__ERP__*``."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000")
    database: str = Field(min_length=1)
    login: str = Field(default="admin", min_length=1)
    password: SecretStr
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

    def connection(self) -> TrytonConnection:
        return TrytonConnection(
            base_url=self.base_url,
            database=self.database,
            login=self.login,
            password=self.password.get_secret_value(),
            timeout_seconds=self.timeout_seconds,
        )
