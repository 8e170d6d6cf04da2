"""Operators over several rows: ``join``, ``top_k``, ``aggregate``, ``dedup``, one per module.

Each builds a ``StagedOp`` (``staged``): a plan whose stages run through the table job machinery
(``tables.jobs``) under one job. ``pairs`` holds what ``join`` and ``dedup`` share: embedding blocking and
the pair judge. They are reached as ``compound.tables.multirow.join`` and so on; this package exports nothing, so
no module name here shadows an operator.
"""
