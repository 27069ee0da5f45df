"""The quantum engine: exact state-vector QAOA and Grover search in NumPy and SciPy.

Pure functions and small dataclasses only: no I/O, no settings, no database; every
random draw takes a seed. Bit i of a basis index is qubit i, which is variable i of
a QUBO.
"""
