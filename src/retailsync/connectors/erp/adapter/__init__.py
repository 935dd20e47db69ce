"""The ERP port implemented on Tryton (``outbound``): the hub's writes and reads to the ERP."""

from __future__ import annotations

from retailsync.connectors.erp.adapter.outbound import ErpCompany, TrytonErpAdapter

__all__ = ["ErpCompany", "TrytonErpAdapter"]
