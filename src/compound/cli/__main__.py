"""``python -m compound.cli``: the same as the ``compound`` console script."""

from compound.cli import main

main()
