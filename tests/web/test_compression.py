"""Compression: text (JSON, JavaScript, CSS, HTML) gzipped where it pays, plotly.js gzipped once,
frames, checkpoints and zips sent as they are."""

from __future__ import annotations

import gzip

import pytest

from app.web import compression, pages
from gatescope.bundle import plotly_js
from tests.web.conftest import Served

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def raw_size(served: Served, path: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    """Bytes on the wire, the Content-Encoding, and the decoded body."""
    with served.client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, path
        wire = b"".join(response.iter_raw())
        encoding = response.headers.get("content-encoding")
    body = gzip.decompress(wire) if encoding == "gzip" else wire
    return len(wire), encoding, body


@pytest.mark.parametrize("path", ["/api/catalog", "/static/js/api.js", "/static/style.css", "/", "/learn"])
def test_text_over_a_kilobyte_is_gzipped_for_clients_that_take_it(served: Served, path: str) -> None:
    size, encoding, body = raw_size(served, path, GZIP)
    plain_size, plain_encoding, plain = raw_size(served, path, IDENTITY)
    assert plain_encoding is None and len(plain) >= compression.MINIMUM_SIZE
    assert encoding == "gzip" and body == plain and size < plain_size / 2, (size, plain_size)


def test_run_data_as_json_and_csv_is_gzipped_and_decodes_the_same(served: Served) -> None:
    run = f"/api/runs/{served.hello}"
    for path in (f"{run}/metrics", f"{run}/metrics?format=csv", f"{run}/probes/latest?format=json"):
        size, encoding, body = raw_size(served, path, GZIP)
        assert encoding == "gzip" and body == raw_size(served, path, IDENTITY)[2] and size < len(body), path
    response = served.client.get(f"{run}/metrics", headers=GZIP)
    assert response.headers["vary"] == "Accept-Encoding" and response.json()[0]["step"] == 1


def test_small_answers_are_not_gzipped(served: Served) -> None:
    response = served.client.get("/api/health", headers=GZIP)
    assert len(response.content) < compression.MINIMUM_SIZE and "content-encoding" not in response.headers


def test_frames_checkpoints_and_zips_go_as_they_are(served: Served) -> None:
    for path, kind in (
        (f"/api/runs/{served.hello}/probes/latest", "application/octet-stream"),
        (f"/api/runs/{served.hello}/checkpoint", "application/octet-stream"),
        (f"/api/runs/{served.hello}/export", "application/zip"),
    ):
        size, encoding, body = raw_size(served, path, GZIP)
        assert encoding is None and size == len(body) >= compression.MINIMUM_SIZE, path
        assert served.client.get(path).headers["content-type"].startswith(kind)


def test_plotly_is_gzipped_once_and_sent_plain_to_clients_that_ask_so(served: Served) -> None:
    pages.plotly_js_gzipped.cache_clear()
    original = plotly_js().read_bytes()
    size, encoding, body = raw_size(served, "/static/vendor/plotly.min.js", GZIP)
    assert encoding == "gzip" and body == original and size < len(original) / 3
    again = served.client.get("/static/vendor/plotly.min.js", headers=GZIP)
    assert again.content == original and again.headers["vary"] == "Accept-Encoding"
    assert pages.plotly_js_gzipped.cache_info().misses == 1  # compressed once, not per request
    plain_size, plain_encoding, plain = raw_size(served, "/static/vendor/plotly.min.js", IDENTITY)
    assert plain_encoding is None and plain == original and plain_size == len(original)


def test_gzipped_is_deterministic_and_accepts_gzip_reads_the_header() -> None:
    data = b"gatescope " * 500
    assert (
        compression.gzipped(data) == compression.gzipped(data)
        and gzip.decompress(compression.gzipped(data)) == data
    )
    assert compression.accepts_gzip("gzip, deflate, br") and compression.accepts_gzip("GZIP")
    assert not compression.accepts_gzip("identity") and not compression.accepts_gzip("")
