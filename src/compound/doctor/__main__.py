"""The child process of ``compound.doctor.check_model``: ``python -m compound.doctor MODEL ENGINE``."""

import sys

from compound.doctor import child

child(sys.argv[1], sys.argv[2])
