"""Forwarding the receivers of a multi-recipient envelope that other delivery services host.

The :class:`delivery.multi_intake.Forward` hook the app uses while forwarding is on
(``FORWARDING``). It walks each receiver's profile like :meth:`delivery.forwarder.Forwarder.forward`
— the services listed after this one, at most ``FORWARD_MAX_SERVICES`` — but in rounds: round
*n* groups the receivers still pending by the *n*-th service of their walk and makes one
``ensign_forwardMultiMessage`` call per service (:meth:`Forwarder.attempt_multi`), the envelope
unchanged and the note naming that group. The answer decides per receiver:

* the call failed as a whole (*unresolved*, *limited*, *unreachable*, *failed*, *no_account*) —
  the group moves on to its next services;
* *refused* as a whole (size, rate, a refused note, …) — the group is refused with that service's code;
* the service took the call — each receiver ``stored``/``duplicate`` there is ``forwarded``
  (with the service's name); ``receiver_without_account`` there moves it on; any other refusal
  (spam, its limits, …) is that receiver's, with the service's code.

A receiver no service took is refused with ``receiver_without_account`` naming every attempt, as a
single envelope is; one whose profile does not list this service is refused with
``receiver_elsewhere`` (:func:`delivery.multi_intake.refuse_elsewhere`): this service is not on
its path, so its sender is to submit to one that is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ensign.protocol.multi import MultiDeliveryInformation, MultiEnvelope

from .errors import ForwardingRefused, ReceiverWithoutAccount
from .forwarder import ForwardAttempt, Forwarder
from .multi_intake import FORWARDED, REFUSED, ForwardRecipient, RecipientOutcome, refuse_elsewhere
from .ports import ResolvedProfile

__all__ = ["ForwardMulti"]

_TAKEN = ("stored", "duplicate")


class ForwardMulti:
    """The :class:`delivery.multi_intake.Forward` hook of the module docstring, on a :class:`Forwarder`."""

    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    async def __call__(
        self,
        envelope: MultiEnvelope,
        info: MultiDeliveryInformation,
        sender: ResolvedProfile,
        recipients: Sequence[ForwardRecipient],
    ) -> Sequence[RecipientOutcome]:
        outcomes: dict[int, RecipientOutcome] = {}
        walks: dict[int, tuple[str, ...]] = {}
        elsewhere: list[ForwardRecipient] = []
        for recipient in recipients:
            walk = self._forwarder.next_services(recipient.profile)
            if walk:
                walks[recipient.index] = walk
            else:
                elsewhere.append(recipient)
        for recipient, outcome in zip(elsewhere, await refuse_elsewhere(envelope, info, sender, elsewhere), strict=True):
            outcomes[recipient.index] = outcome

        by_index = {r.index: r for r in recipients}
        attempts: dict[int, list[ForwardAttempt]] = {index: [] for index in walks}
        pending = list(walks)
        for round_ in range(max((len(walk) for walk in walks.values()), default=0)):
            groups: dict[str, list[int]] = {}
            for index in pending:
                if round_ < len(walks[index]):
                    groups.setdefault(walks[index][round_], []).append(index)
            pending = []
            calls = [self._call(envelope, service, [by_index[i] for i in group]) for service, group in groups.items()]
            for (service, group), answers in zip(groups.items(), await asyncio.gather(*calls), strict=True):
                for index, (attempt, final) in zip(group, answers, strict=True):
                    attempts[index].append(attempt)
                    if final is not None:
                        outcomes[index] = final
                    else:
                        pending.append(index)
        for index in walks:
            if index not in outcomes:
                tried = "; ".join(f"{a.service}: {a.outcome} ({a.detail})" for a in attempts[index])
                error = ReceiverWithoutAccount(
                    f"the receiver has no account on this delivery service, and no other took the envelope ({tried})",
                    details={"forwarding": [a.to_json() for a in attempts[index]]},
                )
                outcomes[index] = RecipientOutcome(by_index[index].name, REFUSED, error)
        return [outcomes[r.index] for r in recipients]

    async def _call(
        self, envelope: MultiEnvelope, service: str, group: list[ForwardRecipient]
    ) -> list[tuple[ForwardAttempt, RecipientOutcome | None]]:
        """One call for ``group``: per receiver, the attempt and its final outcome (``None``: try
        its next service)."""
        attempt, entries = await self._forwarder.attempt_multi(envelope, service, [r.name for r in group])
        if entries is None:
            if attempt.outcome != "refused":
                return [(attempt, None) for _ in group]
            error = ForwardingRefused(f"{service} refused the envelope ({attempt.detail})", code=_code(attempt.detail))
            return [(attempt, RecipientOutcome(r.name, REFUSED, error)) for r in group]
        answers: list[tuple[ForwardAttempt, RecipientOutcome | None]] = []
        for recipient, entry in zip(group, entries, strict=True):
            status, code, message = _entry(entry)
            if status in _TAKEN:
                answers.append((attempt, RecipientOutcome(recipient.name, FORWARDED, delivery_service=service)))
            elif code == ReceiverWithoutAccount.code:
                answers.append((ForwardAttempt(service, "no_account", code), None))
            else:
                error = ForwardingRefused(f"{service} refused the receiver: {message}", code=code)
                answers.append((ForwardAttempt(service, "refused", code), RecipientOutcome(recipient.name, REFUSED, error)))
        return answers


def _entry(entry: Any) -> tuple[str, str, str]:
    """A receiver's outcome in the next service's answer: status, error code and message (a
    malformed one is an ``invalid_response`` refusal)."""
    if not isinstance(entry, dict):
        return "", "invalid_response", "the answer's outcome is not an object"
    status = entry.get("status")
    error = entry.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if status in _TAKEN:
        return str(status), "", ""
    if not isinstance(code, str) or not code.isidentifier() or len(code) > 64:
        return "", "invalid_response", "the answer's outcome has no valid error code"
    return "", code, message[:500] if isinstance(message, str) else ""


def _code(detail: str) -> str:
    """The error code in an attempt's ``HTTP <status> <code>`` detail."""
    parts = detail.split()
    return parts[2] if len(parts) == 3 and parts[2].isidentifier() else ForwardingRefused.code

