"""Admin: reload the CURRENT (or a given) index version, refuse a mismatched one, rebuild in the background."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_TOKEN, build_tiny_index, dialogue

from index.store import current_version
from service.app import create_app

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def app_on_own_root(make_settings: Callable[..., Any], make_components: Callable[..., Any],
                    own_index_root: Path) -> Any:
    settings = make_settings(index=own_index_root)
    return create_app(settings, make_components(settings))


def served_version(client: TestClient) -> str:
    body = client.post("/recommend", json={"dialogue": dialogue("we won the match!!!")}).json()
    assert body["index_version"] == client.get("/readyz").json()["index_version"]
    return str(body["index_version"])


def test_reload_loads_current_or_a_given_version(app_on_own_root: Any, own_index_root: Path, tiny_model: Any,
                                                 tiny_catalog: Path, cache_dir: Path) -> None:
    with TestClient(app_on_own_root) as client:
        old = served_version(client)
        new = build_tiny_index(tiny_model, tiny_catalog, own_index_root, cache_dir)
        assert new != old and served_version(client) == old  # publishing alone changes nothing here
        response = client.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json() == {"previous_version": old, "index_version": new, "published": False}
        assert served_version(client) == new
        back = client.post("/admin/reload", headers=ADMIN, json={"version": old}).json()
        assert back["index_version"] == old and served_version(client) == old
        missing = client.post("/admin/reload", headers=ADMIN, json={"version": "999999-0123456789"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert served_version(client) == old


def test_reload_refuses_an_index_of_another_model(app_on_own_root: Any, own_index_root: Path, tiny_model: Any,
                                                  tiny_catalog: Path, cache_dir: Path) -> None:
    other = copy.deepcopy(tiny_model)
    other.version = "eigml-000000000000"
    foreign = build_tiny_index(other, tiny_catalog, own_index_root, cache_dir)
    with TestClient(app_on_own_root) as client:
        old = served_version(client)
        response = client.post("/admin/reload", headers=ADMIN, json={"version": foreign})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "model_index_mismatch"
        assert "eigml-000000000000" in error["message"] and tiny_model.version in error["message"]
        assert served_version(client) == old


def test_reindex_rebuilds_publishes_and_serves(app_on_own_root: Any, own_index_root: Path) -> None:
    with TestClient(app_on_own_root) as client:
        old = served_version(client)
        started = client.post("/admin/reindex", headers=ADMIN)
        assert started.status_code == 202 and started.json()["state"] == "running"
        deadline = time.monotonic() + 120
        while (status := client.get("/admin/reindex", headers=ADMIN).json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status["state"] == "done", status
        assert status["version"] != old and current_version(own_index_root) == status["version"]
        assert served_version(client) == status["version"]


def test_one_reindex_at_a_time(app_on_own_root: Any) -> None:
    release = threading.Event()
    with TestClient(app_on_own_root) as client:
        indexes = app_on_own_root.state.service.indexes
        indexes.build_index = lambda root: (release.wait(10), "never")[1]  # a build that takes its time
        try:
            assert client.post("/admin/reindex", headers=ADMIN).status_code == 202
            second = client.post("/admin/reindex", headers=ADMIN)
            assert second.status_code == 409 and second.json()["error"]["code"] == "conflict"
        finally:
            release.set()
        status = indexes.wait_reindex(10)
        assert status.state == "failed" and "never" in (status.error or "")  # no such version: nothing swapped
