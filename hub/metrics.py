"""Prometheus metrics, one registry per hub (labels carry kinds and ids, never client data)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The hub's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "hub_records_in_total",
            "Records received, by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.records_out = Counter(
            "hub_records_out_total",
            "Deliveries settled, by feed and status",
            ["feed", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "hub_consent_decisions_total",
            "Consent gate decisions by outcome",
            ["outcome"],
            registry=r,
        )
        self.errors = Counter(
            "hub_errors_total", "Errors by component and kind", ["component", "kind"], registry=r
        )
        self.queue_depth = Gauge(
            "hub_outbox_depth", "Outbox entries by status", ["status"], registry=r
        )
        self.auth_failures = Counter(
            "hub_auth_failures_total", "Refused requests by reason", ["reason"], registry=r
        )
        self.intake_seconds = Histogram(
            "hub_intake_seconds", "Time from receipt to commit", ["connector"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
