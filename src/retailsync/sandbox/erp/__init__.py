"""A local Tryton ERP for tests and the demo: template database, seed data, server launcher.

Stands in for the retailer's ERP on a laptop or in CI. Imports only the standard library, httpx
and its own modules; Tryton itself runs in subprocesses, never in the caller's process.
"""

from __future__ import annotations

from retailsync.sandbox.erp.errors import ErpSandboxError
from retailsync.sandbox.erp.launcher import (
    ErpSandbox,
    Template,
    default_cache_dir,
    ensure_template,
    template_key,
)
from retailsync.sandbox.erp.seed import SandboxSeed

__all__ = [
    "ErpSandbox",
    "ErpSandboxError",
    "SandboxSeed",
    "Template",
    "default_cache_dir",
    "ensure_template",
    "template_key",
]
