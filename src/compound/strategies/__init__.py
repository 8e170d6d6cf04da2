"""Strategies own the loop around a step: they draw candidates, validate them and choose one, and
return all of it as data."""

from compound.strategies.base import Candidate, Single, Strategy, StrategyResult
from compound.strategies.rejection import RejectionSampling
from compound.strategies.repair import Repair
from compound.strategies.sampling import BestOfN, SelfConsistency, VerifyAndSelect

__all__ = [
    "Candidate",
    "Single",
    "Strategy",
    "StrategyResult",
    "Repair",
    "RejectionSampling",
    "BestOfN",
    "SelfConsistency",
    "VerifyAndSelect",
]
