"""Measuring quality against cost: comparisons, returns curves, Pareto fronts and plots."""
