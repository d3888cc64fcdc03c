"""The built-in connector plugins (each registers through the cie_hub entry-point group)."""
