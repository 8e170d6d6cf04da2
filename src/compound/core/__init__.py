"""The small core every other part of compound stands on: types, settings, usage and budgets."""
