"""The fhir connector plugin."""
