"""Optimizers that teach a program: demos, instructions, thresholds (see ``optimize.base`` for the contract)."""
