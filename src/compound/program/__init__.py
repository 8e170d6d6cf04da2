"""Programs: typed calls, steps and their composition."""
