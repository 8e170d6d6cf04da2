"""On the PYTHONPATH of the ``auto``-with-examples CLI tests' subprocesses: registers the scripted teachers."""

import os

if os.environ.get("EXAMPLES_FAKES") == "1":
    import examples_fakes

    examples_fakes.register()
