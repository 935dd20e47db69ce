"""Local stand-ins for the systems the hub talks to, for the demo and the tests.

``erp`` runs a real Tryton ERP on SQLite; ``stripe``, ``shopify``, ``zendesk`` and ``wms``
are HTTP servers that reproduce the subset of each vendor's documented API the connectors
use (paths, payloads, status codes, pagination, rate-limit headers, signed webhooks).
``server`` serves any of them on a loopback port. Nothing here is used in production wiring.
"""
