"""The model family as plain data: the likelihood registry and the parameter
layout.

Nothing here imports the compiled binding (vaefast._core) or the model, so
the NumPy reference (vaefast/reference/), the oracle of every test, can use
these facts without depending on the code it checks. Values the C core also
states (enum codes, clamps) are plain numbers here; tests/test_structure.py
compares them with the binding's.
"""
