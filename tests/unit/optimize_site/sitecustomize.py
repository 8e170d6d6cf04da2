"""On the PYTHONPATH of ``compound optimize``'s CLI test subprocess: registers the scripted models and the
stand-in embedder."""

import os

if os.environ.get("OPTIMIZE_FAKES") == "1":
    import optimize_fakes

    optimize_fakes.register()
    optimize_fakes.patch_embeddings()
