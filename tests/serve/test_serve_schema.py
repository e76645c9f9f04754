"""A property-based run of schemathesis against /openapi.json of a real server: no 500, whatever the input."""

from __future__ import annotations

import pytest

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import Server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (test extra) is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402  (schemathesis brings hypothesis)

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def schema_server(serve_engines, token_file, tmp_path_factory):
    s = Server(serve_engines, "--gallery", str(tmp_path_factory.mktemp("st") / "g.db"), "--max-body-mb", "2",
               token_file=token_file)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def api_schema(schema_server):
    return schemathesis.openapi.from_url(schema_server.url + "/openapi.json")


# The event stream and MJPEG answer until the client leaves: there is no whole answer to check.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/v1/events$|/mjpeg$")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case, schema_server):
    response = case.call(headers=schema_server.headers(), timeout=60)
    assert response.status_code < 500 or response.status_code == 503, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}")
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) == {"code", "message", "input"}
