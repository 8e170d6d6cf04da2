"""Cascades and routers: cheap stages first, the expensive model only when needed."""
