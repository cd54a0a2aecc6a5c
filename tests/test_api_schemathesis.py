"""Property-based run of the live API against its own OpenAPI document (schemathesis + hypothesis).

Bounded: a few examples per operation and generation mode, no deadline; the run takes seconds.
Checks: no 5xx, every status code and content type is documented, every response matches its schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from helpers.api import live_api
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edgecv.config import load_config
from edgecv.store import Store

pytestmark = pytest.mark.schemathesis

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory, models_root):
    config = load_config(
        overrides={"data_dir": tmp_path_factory.mktemp("st-data"), "models_dirs": [models_root]}, environ={}
    )
    store = Store(config.db_path)
    with live_api(config, store) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    store.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(live_schema, mode):
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        has_tenant = any(p.name == "tenantId" for p in operation.path_parameters)
        # Reach the handlers of the configured tenant; other tenants' 404 is tested in test_api.py.
        strategy = operation.as_strategy(mode, path_parameters={"tenantId": "local"} if has_tenant else None)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to negate (no parameters, no body)
