"""``specs/openapi.yaml`` as a fuzzer: schemathesis generates requests for every documented
operation, valid and invalid, and sends them to the service(s) the operation belongs to (its
``tags``) as ``ensign dev`` runs them on loopback. No answer may be a 5xx, and no process may die.

Bounded for CI: :data:`EXAMPLES` cases per operation and service (about a minute in all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.hostile.conftest import Services

SPEC_PATH = Path(__file__).resolve().parents[2] / "specs" / "openapi.yaml"
SCHEMA = schemathesis.openapi.from_path(str(SPEC_PATH))
EXAMPLES = 25


def _operations() -> list[tuple[Any, str]]:
    found = []
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        for service in operation.definition.raw.get("tags", []):
            found.append((operation, service))
    return found


OPERATIONS = _operations()


@pytest.mark.parametrize(
    ("operation", "service"), OPERATIONS, ids=[f"{service}:{op.method.upper()} {op.path}" for op, service in OPERATIONS]
)
def test_no_generated_request_gets_a_server_error(services: Services, operation: Any, service: str) -> None:
    base = {"backend": services.backend, "gateway": services.gateway, "delivery": services.delivery}[service]
    failures: list[str] = []
    sent = 0
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def send(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base, session=session, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:200]}")

    try:
        send()
    finally:
        session.close()
    print(f"schemathesis requests sent: {sent}")
    services.assert_alive()
    assert failures == [], "\n".join(failures[:10])
