"""Tryton ERP connector: JSON-RPC client, mappings, the ErpPort adapter and change capture.

``client`` is the only module that speaks JSON-RPC; ``mapping_*`` are pure Tryton <-> canonical
converters; ``adapter.outbound`` implements :class:`retailsync.ports.erp.ErpPort`; ``poller``
turns ERP changes into canonical events. May import ``domain``, ``ports``, ``xref`` and ``db``.
"""
