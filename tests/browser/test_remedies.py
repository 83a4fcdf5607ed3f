"""The diagnosis's remedies one click away, in Chromium: "apply now" on a running run posts the
remedy's change as an intervention (the run lists it, applied at a step), "new run with this"
starts the remedy's config and opens its page, a remedy only a new run can make and a finished
run's "apply now" are disabled with the reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import poll, screenshot, wait_for_run
from tests.services.test_diagnosis import CONFIGS

# an LSTM on "hello" with a learning rate far too small: an lr_low finding while it runs
CRAWLING: dict[str, Any] = {
    **CONFIGS["hello"],
    "optimizer": {"name": "sgd", "lr": 1e-5},
    "steps": 100_000,
    "probe_every": 10,
    "name": "crawling",
}


def _probed(http: httpx.Client, run_id: str, frames: int = 3) -> None:
    deadline = time.monotonic() + 60
    while len(http.get(f"/api/runs/{run_id}/probes").json()) < frames:
        assert time.monotonic() < deadline, f"run {run_id} has no {frames} probe frames after 60 s"
        time.sleep(0.2)


def _open(page: Page, url: Callable[[str], str], run_id: str) -> None:
    page.goto(url(f"/runs/{run_id}"))
    poll(page, "() => document.querySelectorAll('#diagnosis-list .finding').length")


def _finding(page: Page, kind: str) -> Any:
    return page.locator(f'#diagnosis-list .finding[data-kind="{kind}"]')


def test_apply_now_intervenes_and_new_run_starts_the_remedy(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    run_id = http.post("/api/runs", json=CRAWLING).json()["id"]
    try:
        _probed(http, run_id)
        _open(page, url, run_id)
        low = _finding(page, "lr_low")
        remedy = next(
            f["remedy"]
            for f in http.get(f"/api/runs/{run_id}/diagnosis").json()["findings"]
            if f["kind"] == "lr_low"
        )
        assert (
            remedy["changes"] == {"lr": remedy["patch"]["optimizer"]["lr"]} and remedy["changes"]["lr"] > 1e-5
        )
        before = page.locator("#diagnosis-note").inner_text()
        page.click("#diagnosis-again")  # the diagnosis of the numbers as they are now
        poll(page, f"() => document.getElementById('diagnosis-note').textContent !== {before!r}")
        assert page.locator("#diagnosis-note").inner_text().startswith("At step ")
        low.get_by_role("button", name="apply now").click()
        expect(low.locator(".remedy-out")).to_contain_text("Queued (intervention ")
        deadline = time.monotonic() + 30
        while not (applied := http.get(f"/api/runs/{run_id}/interventions").json()):
            assert time.monotonic() < deadline, "the intervention was never applied"
            time.sleep(0.2)
        assert [a["changes"] for a in applied] == [remedy["changes"]] and applied[0]["step"] >= 1
        low.scroll_into_view_if_needed()
        screenshot(page, "remedies-applied")

        low.get_by_role("button", name="new run with this").click()
        page.wait_for_url(lambda u: "/runs/" in u and run_id not in u)
        new_id = page.url.rsplit("/", 1)[1].split("?")[0]
        new = http.get(f"/api/runs/{new_id}").json()
        assert new["config"]["optimizer"]["lr"] == remedy["changes"]["lr"]
        assert {**new["config"], "name": None} == {**remedy["config"], "name": None}
        assert new["name"] == f"crawling · {remedy['description']}"
        http.post(f"/api/runs/{new_id}/stop")
    finally:
        http.post(f"/api/runs/{run_id}/stop")


def test_remedies_that_cannot_act_say_why(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    run_id = http.post("/api/runs", json={**CONFIGS["vanishing"], "steps": 120}).json()["id"]
    wait_for_run(http, run_id)
    _open(page, url, run_id)
    vanishing = _finding(page, "vanishing")  # a tanh RNN -> an LSTM: another cell, a new run only
    for name in ("apply now", "fork with this"):
        button = vanishing.get_by_role("button", name=name)
        expect(button).to_be_disabled()
        expect(button).to_have_attribute(
            "title", "this change needs a new run: it is not one an intervention can make"
        )
    expect(vanishing.get_by_role("button", name="new run with this")).to_be_enabled()
    diverged = http.post("/api/runs", json=CONFIGS["exploding, not clipped"]).json()["id"]
    wait_for_run(http, diverged)
    _open(page, url, diverged)
    for kind in ("diverged", "exploding"):  # clip at 1: an intervention, but the run has ended
        finding = _finding(page, kind)
        expect(finding.get_by_role("button", name="apply now")).to_be_disabled()
        expect(finding.get_by_role("button", name="apply now")).to_have_attribute(
            "title", "the run is diverged: fork it or start a new run instead"
        )
        expect(finding).to_contain_text("apply now: the run is diverged")
        expect(finding.get_by_role("button", name="fork with this")).to_be_enabled()
    page.locator("#diagnosis").scroll_into_view_if_needed()
    screenshot(page, "remedies-diverged")

    # fork with this: the run goes on from its latest stored step with the remedy's change
    last = http.get(f"/api/runs/{diverged}/snapshots").json()["steps"][-1]
    _finding(page, "diverged").get_by_role("button", name="fork with this").click()
    page.wait_for_url(lambda u: "/runs/" in u and diverged not in u)
    fork = http.get(f"/api/runs/{page.url.rsplit('/', 1)[1].split('?')[0]}").json()
    changes = {"clip": {"mode": "norm", "threshold": 1.0}}
    assert fork["fork"] == {"parent": diverged, "step": last, "changes": changes}
    assert fork["config"]["clip"] == changes["clip"]
    expect(page.locator("#lineage-parent")).to_contain_text(f"at step {last} with ")
    http.post(f"/api/runs/{fork['id']}/stop")
