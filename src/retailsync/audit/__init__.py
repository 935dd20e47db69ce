"""The audit log: an append-only record of every action on money, stock or credentials.

``record_audit(connection, ...)`` writes one entry inside the caller's transaction, so the
entry commits (or rolls back) with the change it describes. There is no update or delete
path in code, and the database itself refuses UPDATE and DELETE on the table (triggers,
migration ``governance_0001``). May import ``retailsync.db`` and ``retailsync.observability``
only; workflows, connectors and the API import it.
"""

from __future__ import annotations

from retailsync.audit.log import AuditEntry, AuditFilter, list_audit_entries, record_audit

__all__ = ["AuditEntry", "AuditFilter", "list_audit_entries", "record_audit"]
