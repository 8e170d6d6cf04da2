"""On the PYTHONPATH of the docs' shell blocks: their ``compound`` runs on the scripted model of the docs test."""

import os

if os.environ.get("COMPOUND_DOCS_FAKE") == "1":
    import docs_fake

    docs_fake.install()
