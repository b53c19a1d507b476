"""Core value types, the step grid, the Arrow dataset format, its writer and reader.

This package imports none of the toolkit's other packages (see docs/architecture.md).
"""

__version__ = "0.1.0"
