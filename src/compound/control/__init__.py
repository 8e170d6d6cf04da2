"""Control points: requirements, permissions and limits."""
