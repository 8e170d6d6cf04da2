"""Put on the PYTHONPATH of the reliability tests' ``compound`` subprocesses: registers their fake model."""

import os

if os.environ.get("RELIO_FAKE") == "1":
    import relio_fake

    relio_fake.register()
