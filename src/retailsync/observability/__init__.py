"""Tracing context, structured logging, metrics and business KPIs.

May import ``domain`` only; every other layer imports from here.
"""
