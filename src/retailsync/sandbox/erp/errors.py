"""Errors raised while preparing or running the ERP sandbox."""

from __future__ import annotations


class ErpSandboxError(RuntimeError):
    """The ERP sandbox could not be prepared or started; the message says why and what to do."""
