"""Liveness (/livez fails once loading has failed, so an orchestrator restarts the replica), and the demo
page and pack list the page filters by."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app


def test_livez_answers_while_serving_and_fails_after_a_failed_load(make_app: Callable[..., Any],
                                                                   make_settings: Callable[..., Any],
                                                                   tmp_path: Any) -> None:
    with TestClient(make_app()) as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/livez").json()["status"] == "ok"
    app = create_app(make_settings(model=tmp_path / "no-checkpoint"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while app.state.service.load_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        response = client.get("/livez")
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "not_ready" and "no-checkpoint" in error["message"]
        assert client.get("/healthz").status_code == 200  # the process itself still answers


def test_demo_page_and_packs(make_app: Callable[..., Any]) -> None:
    with TestClient(make_app()) as client:
        page = client.get("/demo")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for needed in ('id="dialogue"', 'id="packs"', 'id="stickers"', "/recommend", "/demo/packs"):
            assert needed in page.text, needed
        assert client.get("/demo/packs").json() == {"packs": ["noto", "plain", "twemoji"]}
        assert "/demo" not in client.get("/openapi.json").json()["paths"]  # the page is not API
