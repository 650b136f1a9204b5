"""Prometheus metrics of one delivery-service app, in its own registry.

Each app owns a :class:`prometheus_client.CollectorRegistry`, so two apps in one process (tests,
or a multi-tenant runner) never share or clash on counters. ``GET /metrics`` renders it.

=====================================  =========  ============================================
metric                                 type       labels
=====================================  =========  ============================================
``ensign_ds_messages_total``           counter    —  (messages stored; duplicates not counted)
``ensign_ds_message_bytes_total``      counter    —  (canonical size of stored envelopes)
``ensign_ds_duplicates_total``         counter    —  (resubmissions stored once)
``ensign_ds_rejections_total``         counter    ``reason`` (the error code, e.g. ``spam``)
``ensign_ds_acks_total``               counter    —  (messages removed by acknowledgement)
``ensign_ds_pushes_total``             counter    —  (envelopes emitted to sockets)
``ensign_ds_sockets``                  gauge      —  (connected, authorised sockets)
``ensign_ds_notifications_total``      counter    ``channel`` (EMAIL, PUSH), ``outcome`` (sent, otp,
                                                  retried, failed) — registered by
                                                  :mod:`delivery.notify_worker`
``ensign_ds_request_seconds``          histogram  ``method``, ``route`` (the route template),
                                                  ``status``
=====================================  =========  ============================================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "DeliveryMetrics"]


class DeliveryMetrics:
    """The metrics of one app; :meth:`render` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("ensign_ds_messages", "Messages stored", registry=r)
        self.message_bytes = Counter("ensign_ds_message_bytes", "Bytes of stored envelopes", registry=r)
        self.duplicates = Counter("ensign_ds_duplicates", "Resubmitted envelopes stored once", registry=r)
        self.rejections = Counter("ensign_ds_rejections", "Refused submissions by reason", ["reason"], registry=r)
        self.acks = Counter("ensign_ds_acks", "Messages removed by acknowledgement", registry=r)
        self.pushes = Counter("ensign_ds_pushes", "Envelopes pushed to sockets", registry=r)
        self.sockets = Gauge("ensign_ds_sockets", "Connected, authorised sockets", registry=r)
        self.request_seconds = Histogram(
            "ensign_ds_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
