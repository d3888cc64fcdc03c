"""The clarity connector plugin."""
