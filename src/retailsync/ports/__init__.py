"""Protocols the core depends on, one module per kind of outside system.

``erp`` (ErpPort), ``service_desk`` (ServiceDeskPort), ``commerce`` (CommercePort),
``payments`` (PaymentsPort), ``warehouse`` (WarehousePort), ``publisher`` (EventPublisher).
Workflows, views and reconciliation import these; only ``bootstrap`` picks the adapters that
implement them. May import ``retailsync.domain`` only.
"""
