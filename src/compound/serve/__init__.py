"""Serving compound programs: an OpenAI-compatible HTTP API, API keys with daily budgets, Prometheus
metrics and a web UI (extra ``[serve]``). Nothing here is imported by ``import compound``."""
