"""Bad input, as an attacker or a broken client sends it: each a clear 4xx in the one error body, fast.

The body limit, JSON json.loads cannot take, the admin token before anything else, the documented
errors in the OpenAPI schema, sticker images whose files change under the same name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_TOKEN, dialogue, run, serving

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIMIT = 64 * 1024


@pytest.fixture
def client(make_app: Callable[..., Any]) -> Any:
    with TestClient(make_app(max_body_bytes=LIMIT)) as c:
        yield c


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body


def test_a_declared_body_over_the_limit_is_413_before_routing_or_auth(client: TestClient) -> None:
    big = b"x" * (LIMIT + 1)
    headers = {"content-type": "application/json"}
    assert_error(client.post("/recommend", content=big, headers=headers), 413, "payload_too_large")
    # before the admin token is looked at, and on routes that take no body at all
    assert_error(client.post("/admin/reload", content=big, headers=headers), 413, "payload_too_large")
    assert_error(client.post("/admin/reindex", content=big, headers={**headers, **ADMIN}), 413, "payload_too_large")
    assert_error(client.request("GET", "/healthz", content=big), 413, "payload_too_large")
    # at the limit itself: parsed (and refused as JSON, not for its size)
    at_limit = b" " * (LIMIT - 2) + b"{}"
    assert_error(client.post("/recommend", content=at_limit, headers=headers), 422, "validation_error")
    metrics = client.get("/metrics").text
    assert "stickers_body_too_large_total 4.0" in metrics


def test_a_streamed_body_is_cut_off_at_the_limit_without_reading_the_rest(make_app: Callable[..., Any]) -> None:
    app = make_app(max_body_bytes=LIMIT)
    chunk = b"[" * 4096
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it by
        nonlocal sent
        for _ in range(100_000):  # 400 MB if it were all read
            sent += len(chunk)
            yield chunk

    async def main() -> httpx.Response:
        async with serving(app) as c:
            return await c.post("/recommend", content=endless(), headers={"content-type": "application/json"})

    response = run(main())
    assert_error(response, 413, "payload_too_large")
    assert sent <= LIMIT + 2 * len(chunk)


@pytest.mark.parametrize("body", [
    b"[" * 30_000 + b"]" * 30_000,  # deeper than json.loads recurses
    b'{"dialogue": [{"speaker": "A", "text": "caf\xe9 \xff\xfe"}]}',  # not UTF-8
    b'{"dialogue": [{"speaker": "A", "text": "hi"}], "top_k": ' + b"9" * 5000 + b"}",  # 5,000 digits
    b'{"dialogue": [{"speaker": "A", "text": "\\ud800 lone surrogate"}], "top_k": 1e999}',
    b'{"dialogue": ',  # truncated
])
def test_json_that_cannot_be_parsed_is_the_documented_422(client: TestClient, body: bytes) -> None:
    response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "validation_error")


def test_nul_and_lone_surrogates_are_refused(client: TestClient) -> None:
    for text in ("a\x00b", "\ud83d alone", "\udfff"):
        body = ('{"dialogue": [{"speaker": "A", "text": ' + _json_escape(text) + "}]}").encode()
        response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
        assert_error(response, 422, "validation_error")


def _json_escape(text: str) -> str:
    return '"' + "".join(c if c.isalnum() or c == " " else f"\\u{ord(c):04x}" for c in text) + '"'


def test_admin_without_token_is_401_whatever_the_body(client: TestClient) -> None:
    for body in (b"{not json", b"[" * 10_000, b'{"version": "../../etc"}', b"\xff\xfe"):
        response = client.post("/admin/reload", content=body, headers={"content-type": "application/json"})
        assert_error(response, 401, "unauthorised")
        assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorised")
    assert wrong.headers["www-authenticate"] == 'Bearer realm="admin"'


def test_a_version_string_is_never_a_path(client: TestClient) -> None:
    for hostile in ("../../x", "/etc/passwd", "000001-0123456789/../../x", "..", "000001-ABCDEF0123"):
        response = client.post("/admin/reload", headers=ADMIN, json={"version": hostile})
        assert_error(response, 422, "validation_error")


def test_openapi_documents_every_error_with_the_error_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    expected = {("/recommend", "post"): {404, 413, 422, 429, 503}, ("/stickers/{sticker_id}", "get"): {404, 413, 503},
                ("/readyz", "get"): {413, 503}, ("/healthz", "get"): {413},
                ("/admin/reload", "post"): {401, 404, 409, 413, 422, 503},
                ("/admin/reindex", "post"): {401, 409, 413, 503}, ("/admin/reindex", "get"): {401, 413, 503}}
    error_ref = "#/components/schemas/ErrorBody"
    for (path, method), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        for status in statuses:
            assert str(status) in responses, (path, method, status)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": error_ref}, (path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_sticker_etag_follows_a_file_replaced_with_its_times_kept(client: TestClient, tiny_catalog: Path,
                                                                  tmp_path: Path) -> None:
    path = tiny_catalog / "plain" / "1f60b.png"
    original = path.read_bytes()
    try:
        first = client.get("/stickers/plain/1f60b")
        assert first.headers["etag"] == '"' + hashlib.sha256(first.content).hexdigest()[:32] + '"'
        # `cp -p`: other art of the same size, the old mtime kept
        other = tmp_path / "other.png"
        other.write_bytes(bytes(reversed(original)))
        stat = path.stat()
        shutil.copyfile(other, path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
        second = client.get("/stickers/plain/1f60b", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200 and second.content == bytes(reversed(original))
        assert second.headers["etag"] == '"' + hashlib.sha256(second.content).hexdigest()[:32] + '"'
        assert "immutable" not in second.headers["cache-control"]
    finally:
        path.write_bytes(original)


def test_path_traversal_in_sticker_ids(client: TestClient) -> None:
    for sneaky in ("/stickers/../../etc/passwd", "/stickers/%2e%2e/%2e%2e/etc/passwd", "/stickers/noto/%00",
                   "/stickers/noto/..%5c..%5cetc", "/stickers/" + "a/" * 2000):
        response = client.get(sneaky)
        assert response.status_code == 404, sneaky
        assert response.json()["error"]["code"] == "not_found"


def test_a_good_request_still_works_next_to_the_bad_ones(client: TestClient) -> None:
    response = client.post("/recommend", json={"dialogue": dialogue("we won the match!!!"), "top_k": 3})
    assert response.status_code == 200 and len(response.json()["hits"]) == 3
