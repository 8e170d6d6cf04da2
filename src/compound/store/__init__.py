"""SQLite-backed stores: the response cache, the trace store and (later) job checkpoints."""
