"""qml: operations toolkit for a multi-tenant Quantum ML service."""

__version__ = "0.1.0"
