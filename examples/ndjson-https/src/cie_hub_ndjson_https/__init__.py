"""An example third-party CIE Hub plugin: signed NDJSON batches over HTTPS, and a codec."""

__version__ = "0.1.0"
