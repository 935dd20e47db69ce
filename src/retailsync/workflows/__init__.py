"""Durable retail workflows on DBOS: refunds, returns, replacements, cancellations, fulfilment.

One module per orchestration (``refund``, ``returns``, ``replacement``, ``cancellation``,
``fulfillment``); each workflow body reads like the process and every outside effect is a named
step in ``steps`` that calls a port (:mod:`retailsync.ports`) with an idempotency key derived from
the workflow id and the step name. ``refunding`` holds the money-back part (credit note, refund,
and the rejected / failed / finance-exception endings) that ``refund`` and ``returns`` share.
``runtime`` configures and launches DBOS, ``api`` is the process API router, ``cli`` the
operator commands, ``routing`` the bus subscriptions that start and feed workflows from
canonical events. May import ``retailsync.domain``,
``retailsync.ports``, ``retailsync.resilience.errors``, ``retailsync.config``,
``retailsync.audit``, ``retailsync.observability`` and the subscription types of
``retailsync.bus.backend``; never a connector or a sandbox (``bootstrap`` hands the adapters
in).
"""
