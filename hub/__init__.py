"""CIE Hub: integration hub for a Community Information Exchange."""

__version__ = "0.1.0"
