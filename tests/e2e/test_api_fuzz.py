"""Schemathesis against the app's own OpenAPI: no 5xx, no response that breaks the schema.

The app runs on its own SQLite database, set up like the ``scheme`` fixture, so that generated
requests meet real participants, aliases and rates.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)

from entrepot.entrypoints.api.app import create_app
from entrepot.kernel.clock import FakeClock
from entrepot.payments.credentials import issue_credential
from entrepot.storage import upgrade
from entrepot.storage.engine import create_engine_from_url
from tests.conftest import build_scheme

pytestmark = pytest.mark.slow

_home = Path(tempfile.mkdtemp(prefix="entrepot-fuzz-"))
_engine = create_engine_from_url(f"sqlite:///{_home / 'fuzz.db'}")
upgrade(_engine)
_scheme = build_scheme(_engine, FakeClock())
_app = create_app(_scheme)
TOKEN = issue_credential(_engine, "mtn-rw").token
# The sanctions lists load on the first screening (about 2 s, several times that on a loaded
# machine): load them before the run, so no generated request waits past the client's 10 s.
TestClient(_app).post(
    "/v1/risk/screenings",
    json={"parties": [{"name": "Load The Lists", "type": "individual"}]},
    headers={"Authorization": f"Bearer {TOKEN}"},
).raise_for_status()
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)
# Every call carries a real credential (below), so the generator must not also invent or drop
# the Authorization header: a negative case whose only "invalid" part was that header would
# then be sent valid and read as invalid data accepted. Authentication has its own tests
# (test_api_security.py).
schema.config.generation.update(with_security_parameters=False)


#: examples per operation; ENTREPOT_FUZZ_EXAMPLES raises it for a deeper run by hand
EXAMPLES = int(os.environ.get("ENTREPOT_FUZZ_EXAMPLES", "12"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_generated_requests(case: Any) -> None:
    # No 5xx; every response matches its documented schema and content type; invalid requests
    # are refused. (Documenting every 4xx status per route is not asked of this API.)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            negative_data_rejection,
        ],
    )
