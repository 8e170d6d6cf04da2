"""Web UI (placeholder while it is built)."""


def mount_ui(app, reports):
    return None
