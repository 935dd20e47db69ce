"""Retail Sync Hub: keeps a retailer's ERP, service desk, storefronts, warehouse and payment
services in step through governed APIs, durable events and orchestrated workflows."""

__version__ = "0.1.0"
