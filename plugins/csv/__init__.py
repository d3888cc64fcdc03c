"""The csv connector plugin."""
