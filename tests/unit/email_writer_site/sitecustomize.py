"""On the PYTHONPATH of ``compound distill email-writer``'s CLI test subprocess: the scripted models and
the faked training seam."""

import os

if os.environ.get("EMAIL_WRITER_FAKES") == "1":
    import email_writer_fakes

    email_writer_fakes.register()
    email_writer_fakes.fake_training([])
