"""The request body each process accepts, by process kind (validated before a workflow starts)."""

from __future__ import annotations

import importlib

from pydantic import BaseModel

from retailsync.workflows.errors import WorkflowError
from retailsync.workflows.process import ProcessKind

REQUEST_MODELS: dict[str, tuple[str, str]] = {
    ProcessKind.REFUND: ("refund", "ServiceRefundRequest"),
    ProcessKind.RETURN: ("returns", "ReturnToRefundRequest"),
    ProcessKind.REPLACEMENT: ("replacement", "ReplacementRequest"),
    ProcessKind.CANCELLATION: ("cancellation", "CancellationRequest"),
    ProcessKind.FULFILLMENT: ("fulfillment", "FulfillmentRequest"),
}


class ProcessNotAvailable(WorkflowError):
    """The process kind exists in the API but its workflow is not in this release."""

    def __init__(self, kind: str) -> None:
        available = ", ".join(k for k in REQUEST_MODELS if _model_or_none(k) is not None)
        super().__init__(f"the {kind} process is not available yet; available: {available}")
        self.kind = kind


def _model_or_none(kind: str) -> type[BaseModel] | None:
    if kind not in REQUEST_MODELS:
        return None
    module, name = REQUEST_MODELS[kind]
    model = getattr(importlib.import_module(f"retailsync.workflows.{module}"), name, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def request_model(kind: str) -> type[BaseModel]:
    """The pydantic model of ``kind``'s request body."""
    model = _model_or_none(kind)
    if model is None:
        raise ProcessNotAvailable(kind)
    return model
