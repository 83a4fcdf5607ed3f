"""The storage budget on the pages, in Chromium: the run head's storage line ("storage 0.9 of 1 MB ·
4 of 31 probe frames kept") and the run's notes; a scrubber step whose frame was thinned shows the
nearest kept frame with a sentence saying so (no failed request, no console error, no blank
chart); the new-run form's storage budget field, bounded by the catalog's limit and named in the
form's words when the server refuses it.

The run trains on a server of this module's own (its data directory is where the test writes a
note, as the reader does below the disk's floor)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.services.disk import frames_stopped
from app.services.storage import Storage
from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, scrub, wait_for_run
from tests.browser.test_form import field, open_form, says
from tests.live_server import LiveServer, serve

THINNED: dict[str, Any] = {  # ~0.3 MB per probe (frame, display frame, snapshot): 1 MB keeps a few
    "cell": "lstm",
    "hidden_size": 32,
    "task": {"name": "adding", "seq_len": 100},
    "steps": 30,
    "probe_every": 1,
    "storage_mb": 1,
}


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    data = tmp_path_factory.mktemp("storage-data")
    with serve(data, GATESCOPE_MAX_RUNS="1") as live:
        yield live, data


@pytest.fixture(scope="module")
def thinned(own: tuple[LiveServer, Path]) -> dict[str, Any]:
    """A finished run thinned to its 1 MB budget: the run, its kept steps and every probe step."""
    live, _ = own
    with httpx.Client(base_url=live.url, timeout=30.0) as http:
        run = http.post("/api/runs", json=THINNED).json()
        run = wait_for_run(http, run["id"])
        kept = http.get(f"/api/runs/{run['id']}/probes").json()
        every = http.get(f"/api/runs/{run['id']}/gradflow", params={"max_rows": 1000}).json()["steps"]
    assert run["status"] == "completed" and every == list(range(31))
    assert 2 <= len(kept) < len(every) and kept[0] == 0 and kept[-1] == 30  # thinned, endpoints kept
    return {"run": run, "kept": kept, "every": every}


def _nearest(step: int, kept: list[int]) -> int:
    return min(kept, key=lambda s: (abs(s - step), s))


def test_a_thinned_step_shows_the_nearest_kept_frame_and_says_why(
    gs_page: Page, own: tuple[LiveServer, Path], thinned: dict[str, Any]
) -> None:
    live, _ = own
    run, kept, every = thinned["run"], thinned["kept"], thinned["every"]
    gone = [s for s in every if s not in kept]
    step = gone[len(gone) // 2]
    gs_page.goto(f"{live.url}/runs/{run['id']}?step={step}")
    nearest = _nearest(step, kept)
    expect(gs_page.locator("#frame-info .frame-gap")).to_have_text(
        f"The frame of step {step} was thinned to keep the run within its 1 MB storage budget; "
        f"the nearest kept is step {nearest}, shown here."
    )
    expect(gs_page.locator("#scrub-label")).to_have_text(str(nearest))
    mb = f"{run['storage_bytes'] / 2**20:.1f}"
    expect(gs_page.locator("#run-storage")).to_have_text(
        f"storage {mb} of 1 MB · {len(kept)} of {len(every)} probe frames kept"
    )
    screenshot(gs_page, "run-thinned-step")
    gs_page.locator("#chart-hidden").scroll_into_view_if_needed()
    expect(gs_page.locator(heatmap("chart-hidden"))).to_have_count(1)  # drawn: the nearest frame
    assert poll(gs_page, "() => window.__gatescopeRun.state.frame?.step") == nearest
    other = gone[0]  # the scrubber, as a drag moves it, to another thinned step
    scrub(gs_page, every.index(other))
    expect(gs_page.locator("#frame-info .frame-gap")).to_have_text(
        f"The frame of step {other} was thinned to keep the run within its 1 MB storage budget; "
        f"the nearest kept is step {_nearest(other, kept)}, shown here."
    )
    scrub(gs_page, every.index(kept[-1]))  # a kept step: no sentence
    expect(gs_page.locator("#frame-info .frame-gap")).to_be_hidden()
    expect(gs_page.locator("#run-error")).to_be_hidden()


def test_the_run_head_shows_the_runs_notes(
    gs_page: Page, own: tuple[LiveServer, Path], thinned: dict[str, Any]
) -> None:
    live, data = own
    run_id = thinned["run"]["id"]
    note = frames_stopped(12, "the disk holding data has 300 MB free, below the server's floor of 512 MB")
    with Storage(data) as storage:  # as the reader notes it when the disk goes below the floor
        storage.add_note(run_id, note)
    gs_page.goto(f"{live.url}/runs/{run_id}")
    expect(gs_page.locator("#run-notes li")).to_have_text([note])
    expect(gs_page.locator("#run-notes")).to_be_visible()
    reveal_all(gs_page)
    expect(gs_page.locator("#run-storage")).to_contain_text(f"of {len(thinned['every'])} probe frames kept")
    screenshot(gs_page, "run-head-storage")
    gs_page.goto(f"{live.url}/runs/{run_id}?step=31")  # a link to a step after the last kept frame
    expect(gs_page.locator("#frame-info .frame-gap")).to_have_text(
        "The frame of step 31 was not recorded (the run's notes say why); "
        "the nearest kept is step 30, shown here."
    )


def test_the_form_has_a_storage_budget_field_bounded_by_the_catalog(
    gs_page: Page, url: Any, http: httpx.Client
) -> None:
    limit = http.get("/api/catalog").json()["limits"]["storage_mb"]
    open_form(
        gs_page, url, {"cell": "gru", "hidden_size": 8, "steps": 5, "task": {"name": "adding", "seq_len": 10}}
    )
    budget = gs_page.locator(field("storage_mb"))
    assert budget.get_attribute("max") == str(limit) and budget.get_attribute("placeholder") == "the server's"
    gs_page.problems.allowed.append("status of 422")  # type: ignore[attr-defined]
    gs_page.fill(field("storage_mb"), str(limit + 1))
    says(gs_page, f"storage budget (MB) must be at most {limit}")
    gs_page.fill(field("storage_mb"), "0")
    says(gs_page, "storage budget (MB) must be at least 1")
    budget.scroll_into_view_if_needed()
    screenshot(gs_page, "form-storage-budget")
    gs_page.fill(field("storage_mb"), "5")
    expect(gs_page.locator("#form-error")).to_be_hidden()
    gs_page.click("#start-run")
    expect(gs_page).to_have_url(re.compile(r"/runs/"))
    newest = http.get("/api/runs", params={"limit": 1}).json()["items"][0]["id"]
    assert gs_page.url.split("?")[0].endswith(f"/runs/{newest}")
    assert http.get(f"/api/runs/{newest}").json()["storage_mb"] == 5
