"""Schema-based fuzzing (schemathesis) of the OpenAPI description, in process over ASGI:
no request makes the service fail (5xx) and every response matches the schema.

The app is seeded with the demo dataset, a plan and a job, and generated path parameters
are swapped for those real ids half of the time, so the fuzzing reaches the analysis code
behind ``/v1/datasets/{dataset_id}/…`` and not only its 404s. Bounded: a few examples per
operation, no deadline (the first gap analysis of a dataset takes a second or two).

The schema is read at import time (``schema.parametrize`` needs it to make one test per
operation) from an app whose store is never used; the requests go to the seeded app
through :data:`_SEEDED`, filled by a module fixture (schemathesis's lazy
``from_fixture`` loader does not work with pytest 9).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from geo.dataset import Dataset

#: Examples per operation; ``OUTREACH_FUZZ_EXAMPLES=200`` for a deeper (minutes) run.
MAX_EXAMPLES = int(os.environ.get("OUTREACH_FUZZ_EXAMPLES", "25"))


class _SeededApp:
    """The ASGI app under test, built by the module fixture before the first request."""

    def __init__(self) -> None:
        self.app: Any = None
        self.headers: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the `seeded` fixture builds the app first"
        await self.app(scope, receive, send)


def _openapi() -> dict[str, Any]:
    from app.main import create_app
    from app.settings import Settings

    return create_app(Settings(), store=mock.MagicMock()).openapi()


_SEEDED = _SeededApp()
schema = schemathesis.openapi.from_dict(_openapi())
schema.app = _SEEDED


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    # Deleting the seeded dataset would leave nothing to fuzz: DELETE gets made-up ids.
    deleting = context.operation is not None and context.operation.method.upper() == "DELETE"
    if not isinstance(path_parameters, dict) or deleting:
        return st.just(path_parameters)
    real = {k: _SEEDED.ids[k] for k in path_parameters if k in _SEEDED.ids}
    return st.sampled_from([path_parameters, {**path_parameters, **real}])


@pytest.fixture(scope="module", autouse=True)
def seeded(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Dataset) -> Iterator[None]:
    """The app on a SQLite store holding the demo dataset, one plan and one finished job."""
    from starlette.testclient import TestClient

    from app.auth import create_key
    from app.main import create_app
    from app.settings import Settings
    from app.store import open_store

    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'fuzz.db'}"
    store = open_store(url)
    dataset_id = store.create_dataset(demo_dataset).id
    _, admin = create_key(store, role="admin")
    job_id = "0" * 32
    store.create_job({"id": job_id, "kind": "plan", "status": "succeeded", "progress": 1.0})
    app = create_app(Settings(database_url=url, data_dir=folder), store=store)
    headers = {"Authorization": f"Bearer {admin}"}
    with TestClient(app) as client:
        plan = client.post(f"/v1/datasets/{dataset_id}/plans", json={"n_sites": 3}, headers=headers)
        assert plan.status_code == 201, plan.text
        _SEEDED.app, _SEEDED.headers = app, headers
        _SEEDED.ids = {"dataset_id": dataset_id, "plan_id": plan.json()["id"], "job_id": job_id}
        yield
    _SEEDED.app = None
    store.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("OUTREACH_FUZZ_EXAMPLES") is None,
)
def test_no_server_error_and_responses_match_the_schema(case: Any) -> None:
    case.call_and_validate(
        headers=_SEEDED.headers,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ],
    )


def test_openapi_document_lists_every_v1_route() -> None:
    """The fuzzing above only reaches what the OpenAPI document describes."""
    from tests.test_roles import flat_routes

    paths = set(schema.raw_schema["paths"])
    routes = {path for path, _ in flat_routes(_SEEDED.app) if path.startswith("/v1/")}
    assert len(routes) >= 10 and routes <= paths
