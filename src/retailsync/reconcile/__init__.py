"""Reconciliation jobs, drift reports and the available-to-sell service.

``records`` (typed figures each source yields), ``merge`` (streaming k-way merge of sorted
sources), ``drift`` (pure drift classification per job), ``policy`` (owner rules: correction
or exception), ``corrections`` (correction events and exception tickets with derived ids),
``engine`` (one run: merge -> classify -> report -> corrections/exceptions), ``store`` and
``tables`` (drift reports in SQL), ``export`` (CSV / JSON), ``sources`` (adapters paging
through the ports, and CSV files), ``availability`` (pure available-to-sell state and push
decision), ``projection`` (the SQL-backed available-to-sell read model the bus feeds),
``api`` and ``cli`` (entrypoints).

May import ``retailsync.domain``, ``retailsync.ports``, ``retailsync.db`` and
``retailsync.config``; ``api`` also imports ``retailsync.api``. Never imports connectors.
"""
