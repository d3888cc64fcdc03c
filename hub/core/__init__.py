"""The domain and the engine: canonical records, identity, consent gate, routing, ports."""
