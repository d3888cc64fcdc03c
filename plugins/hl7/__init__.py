"""The hl7 connector plugin."""
