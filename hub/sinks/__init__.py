"""Built-in sinks (outbound connectors): the signed JSON webhook and its signing helper.

Sinks receive only what the consent gate released at send time; they render and send it and
answer one :class:`hub.core.ports.DeliveryOutcome` per delivery. ``hub.sinks.plugin`` registers
them with the plugin manager like any third-party sink.
"""
