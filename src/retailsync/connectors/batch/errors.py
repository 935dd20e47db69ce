"""Errors of the batch-file connector."""

from __future__ import annotations


class BatchError(Exception):
    """Base class for every batch-file connector error."""


class BatchConfigError(BatchError, ValueError):
    """The connector settings are invalid; the message names the bad key."""


class RowRejected(BatchError, ValueError):
    """One CSV row cannot become an event; the message is the reason written to the result."""
