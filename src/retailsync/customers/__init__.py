"""Customer master: golden records across storefront, service desk and ERP.

The pure rules (normalising e-mail / phone / names, exact and fuzzy matching, survivorship,
consent propagation planning) live in :mod:`retailsync.domain.identity`. This package keeps
the golden records, each system's record and id, merge proposals awaiting a person and
consent updates owed to each system in SQL (``tables``, ``master``).
May import ``retailsync.domain``, ``retailsync.ports``, ``retailsync.db`` and ``retailsync.xref``.
"""
