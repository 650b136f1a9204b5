"""Prometheus metrics of one delivery-service app, in its own registry.

Each app owns a registry (:class:`ensign.metrics.ServiceMetrics`: per-app, summed across
``--workers``); ``GET /metrics`` renders it.

=====================================  =========  ============================================
metric                                 type       labels
=====================================  =========  ============================================
``ensign_ds_messages_total``           counter    —  (messages stored; duplicates not counted)
``ensign_ds_message_bytes_total``      counter    —  (canonical size of stored envelopes)
``ensign_ds_duplicates_total``         counter    —  (resubmissions stored once)
``ensign_ds_rejections_total``         counter    ``reason`` (the error code, e.g. ``spam``)
``ensign_ds_forwards_total``           counter    ``outcome`` of handing an envelope on (forwarded,
                                                  no_account, unreachable, failed, refused,
                                                  unresolved, limited; ``specs/delivery.md`` §4.5)
``ensign_ds_forwarded_in_total``       counter    —  (forwarded envelopes stored here)
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

from ensign.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

__all__ = ["CONTENT_TYPE_LATEST", "DeliveryMetrics"]


class DeliveryMetrics(ServiceMetrics):
    """The metrics of one delivery app; :meth:`render` gives the text exposition format."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        super().__init__("ensign_ds", multiprocess_dir=multiprocess_dir)
        self.messages = self.counter("messages", "Messages stored")
        self.message_bytes = self.counter("message_bytes", "Bytes of stored envelopes")
        self.duplicates = self.counter("duplicates", "Resubmitted envelopes stored once")
        self.rejections = self.counter("rejections", "Refused submissions by reason", ["reason"])
        self.forwards = self.counter(
            "forwards", "Envelopes handed on to another delivery service, by service answer", ["outcome"]
        )
        self.forwarded_in = self.counter("forwarded_in", "Forwarded envelopes stored here")
        self.acks = self.counter("acks", "Messages removed by acknowledgement")
        self.pushes = self.counter("pushes", "Envelopes pushed to sockets")
        self.sockets = self.gauge("sockets", "Connected, authorised sockets")
