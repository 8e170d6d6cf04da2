"""Programs: steps (``Predict``, ``ChainOfThought``), modules and their composition, and row rendering."""
