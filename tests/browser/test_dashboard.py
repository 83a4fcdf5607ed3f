"""The dashboard in a real browser: it loads, the form round-trips through the URL, a run
started from the form streams onto its run page, where the heatmaps appear and update, and a
list of sixty runs pages, filters, searches, renames, tags and deletes."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.services.records import RunRecord
from app.services.schemas import RunCreate
from app.services.storage import Storage
from tests.browser.conftest import heatmap, poll, reveal_all, screenshot, scrub, wait_for_run
from tests.live_server import LiveServer, serve

# slow enough to watch stream (a probe every 5 steps), small enough to finish in seconds
STREAMED: dict[str, Any] = {
    "cell": "gru",
    "hidden_size": 16,
    "task": {"name": "adding", "seq_len": 20},
    "batch_size": 16,
    "steps": 700,
    "probe_every": 5,
    "seed": 3,
}


def form_value(page: Page, name: str) -> str:
    value: str = page.locator(f'#run-form [name="{name}"]').input_value()
    return value


def test_dashboard_loads_with_catalog_form_and_presets(gs_page: Page, url: Callable[[str], str]) -> None:
    gs_page.goto(url("/"))
    expect(gs_page.locator("#start-run")).to_be_visible()
    cells = gs_page.locator('#run-form [name="cell"] option').all_inner_texts()
    assert cells == ["rnn_tanh", "rnn_relu", "lstm", "gru", "mingru", "minlstm", "slstm"]
    for knob in (
        "hidden_size",
        "num_layers",
        "bidirectional",
        "init.scheme",
        "init.gain",
        "task.name",
        "optimizer.name",
        "optimizer.lr",
        "clip.mode",
        "clip.threshold",
        "tbptt",
        "steps",
        "seed",
        "probe_every",
        "batch_size",
    ):
        assert gs_page.locator(f'#run-form [name="{knob}"]').count() == 1, knob
    presets = gs_page.locator("#presets button").all_inner_texts()
    assert {"vanishing", "exploding", "hello", "adding", "copy", "shakespeare", "bidirectional"} <= set(
        presets
    )
    gs_page.click('#presets [data-preset="vanishing"]')
    expect(gs_page.locator("#preset-note")).to_contain_text("tanh RNN vs LSTM vs GRU")
    assert form_value(gs_page, "param.seq_len") == "100"
    expect(gs_page).to_have_url(re.compile(r"preset=vanishing"))
    screenshot(gs_page, "dashboard")


def test_form_state_lives_in_the_url(gs_page: Page, url: Callable[[str], str]) -> None:
    config = {**STREAMED, "init": {"scheme": "orthogonal", "gain": 0.9}, "tbptt": 7}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#start-run")).to_be_visible()
    assert form_value(gs_page, "cell") == "gru"
    assert form_value(gs_page, "hidden_size") == "16"
    assert form_value(gs_page, "param.seq_len") == "20"
    assert form_value(gs_page, "init.scheme") == "orthogonal"
    assert form_value(gs_page, "tbptt") == "7"
    # an edit goes back into the URL, so the link shares it
    gs_page.fill('#run-form [name="hidden_size"]', "24")
    poll(gs_page, "() => new URL(location.href).searchParams.get('config')?.includes('\"hidden_size\":24')")
    shared = json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(gs_page.url).query)["config"][0])
    assert shared["hidden_size"] == 24 and shared["tbptt"] == 7 and shared["task"]["seq_len"] == 20


def test_what_a_config_lacks_comes_from_the_catalogs_defaults(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    defaults = http.get("/api/catalog").json()["defaults"]
    config = {"cell": "gru", "task": {"name": "copy"}}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#start-run")).to_be_visible()
    for name in ("hidden_size", "num_layers", "steps", "batch_size", "seed", "probe_every"):
        assert form_value(gs_page, name) == str(defaults[name]), name
    assert float(form_value(gs_page, "optimizer.lr")) == defaults["optimizer"]["lr"]
    assert form_value(gs_page, "clip.mode") == defaults["clip"]["mode"]
    assert form_value(gs_page, "task.name") == "copy"


def test_a_link_with_an_unknown_task_says_so(gs_page: Page, url: Callable[[str], str]) -> None:
    config = {"cell": "gru", "task": {"name": "sorting"}}
    gs_page.goto(url("/?config=" + urllib.parse.quote(json.dumps(config))))
    expect(gs_page.locator("#form-error")).to_contain_text('task "sorting" is none of')
    assert form_value(gs_page, "task.name") == "adding"  # the starting preset instead


def test_a_run_started_from_the_form_streams_and_its_heatmaps_update(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/?config=" + urllib.parse.quote(json.dumps(STREAMED))))
    page.click("#start-run")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    for chart in ("chart-gradflow", "chart-hidden", "chart-gate-z", "chart-connectivity"):
        page.locator(f"#{chart}").scroll_into_view_if_needed()
        expect(page.locator(heatmap(chart))).to_have_count(1)
    page.locator("#chart-gradflow").scroll_into_view_if_needed()
    rows = "() => window.__gatescopeRun.feed.gradflow.steps.length"
    renders = "() => (window.__gatescope.byChart.gradflow || []).length"
    before_rows, before_renders = page.evaluate(rows), page.evaluate(renders)
    poll(page, f"() => ({rows})() > {before_rows} && ({renders})() > {before_renders}")

    # freeze the view: live updates keep arriving (and are kept) but are not drawn
    if http.get(f"/api/runs/{run_id}").json()["status"] == "running":
        page.click("#freeze")
        page.wait_for_timeout(400)  # a frame already being drawn may finish
        paused_renders = page.evaluate(renders)
        metrics = page.evaluate("() => window.__gatescopeRun.feed.metrics.length")
        poll(page, f"() => window.__gatescopeRun.feed.metrics.length > {metrics} + 20")
        assert page.evaluate(renders) == paused_renders
        page.click("#play")
        poll(page, f"() => ({renders})() > {paused_renders}")

    assert wait_for_run(http, run_id)["status"] == "completed"
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#stop")).to_be_disabled()
    steps = http.get(f"/api/runs/{run_id}/probes").json()
    poll(page, f"() => window.__gatescopeRun.feed.gradflow.steps.length === {len(steps)}")
    poll(page, f"() => window.__gatescopeRun.feed.probeSteps.length === {len(steps)}")
    assert page.evaluate("() => window.__gatescopeRun.feed.gradflow.steps[0]") == 0
    reveal_all(page)
    screenshot(page, "run-streamed", full_page=True)

    # the scrubber replays a recorded step; a click on a timestep highlights it everywhere
    scrub(page, 3)
    expect(page.locator("#scrub-label")).to_have_text(str(steps[3]))
    page.locator("#chart-gradflow").scroll_into_view_if_needed()  # the click below is in page coordinates
    box = page.locator("#chart-gradflow .nsewdrag").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    poll(page, "() => window.__gatescopeRun.state.t !== null")
    t = page.evaluate("() => window.__gatescopeRun.state.t")
    page.locator("#chart-hidden").scroll_into_view_if_needed()
    poll(page, "() => document.querySelector('#chart-hidden .gs-marker-x:not([hidden])') !== null")
    page.wait_for_url(re.compile(rf"t={t}"))
    shown = page.evaluate("() => window.__gatescopeRun.state.frame.step")
    page.wait_for_url(re.compile(rf"step={shown}"))

    # the link restores scrubber, highlight and view
    page.goto(url(f"/runs/{run_id}?step={steps[2]}&t=4&view=hidden"))
    expect(page.locator("#scrub-label")).to_have_text(str(steps[2]))
    assert page.evaluate("() => window.__gatescopeRun.state.t") == 4
    expect(page.locator("#view-hidden")).to_have_class(re.compile("focus"))
    poll(page, "() => document.querySelector('#chart-hidden .gs-marker-x:not([hidden])') !== null")


def test_stop_button_stops_a_running_run(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    run = http.post("/api/runs", json={**STREAMED, "steps": 100_000, "probe_every": 50}).json()
    gs_page.goto(url(f"/runs/{run['id']}"))
    expect(gs_page.locator("#run-status")).to_have_text(re.compile("queued|running"))
    gs_page.locator("#chart-gradflow").scroll_into_view_if_needed()  # charts draw once on screen
    expect(gs_page.locator(heatmap("chart-gradflow"))).to_have_count(1)
    gs_page.click("#stop")
    expect(gs_page.locator("#run-status")).to_have_text("stopped", timeout=15_000)
    assert wait_for_run(http, run["id"])["status"] == "stopped"


# -- sixty runs: paging, the count, filters, search, tags, renaming, bulk delete ----------------

CELLS = ("rnn_tanh", "lstm", "gru")
STATUSES = ("completed", "failed", "stopped")


def seed_sixty(data_dir: Path) -> None:
    """60 finished runs straight into storage, run00 (oldest) .. run59, each with 20 steps of a
    falling loss (for its sparkline): cells (two runs each) and statuses in turn, every 4th on
    copy, every 5th named "sweep lr <i>", the even ones tagged "sweep", every 7th "baseline"."""
    with Storage(data_dir) as storage:
        for i in range(60):
            tags = (["sweep"] if i % 2 == 0 else []) + (["baseline"] if i % 7 == 0 else [])
            config = RunCreate.model_validate(
                {
                    "cell": CELLS[i // 2 % 3],
                    "hidden_size": 16,
                    "task": {"name": "adding" if i % 4 else "copy"},
                    "steps": 20,
                    "name": f"sweep lr {i}" if i % 5 == 0 else None,
                    "tags": tags,
                }
            )
            record = RunRecord.new(f"run{i:02d}", config)
            record.created_at = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=i)
            record.status, record.step = STATUSES[i % 3], 20  # type: ignore[assignment]
            storage.create_run(record)
            rows = [{**STEP, "step": s, "loss": 1.0 / s + 0.01 * i} for s in range(1, 21)]
            storage.add_steps(record.id, rows)


STEP: dict[str, Any] = {
    "metric": None,
    "grad_norm": 1.0,
    "grad_norm_clipped": 1.0,
    "clipped": False,
    "param_grad_norms": {},
    "update_ratio": 1e-3,
    "lr": 1e-3,
    "seconds": 0.01,
}


@pytest.fixture(scope="module")
def sixty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("sixty")
    seed_sixty(data)
    with serve(data) as live:
        yield live


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#runs tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.run)")
    return ids


def shows(page: Page, count: str, first: str | None) -> None:
    """Wait until the list says `count` and its first row is `first` (None: no rows)."""
    expect(page.locator("#runs-count")).to_have_text(count)
    poll(
        page, f"() => (document.querySelector('#runs tbody tr')?.dataset.run ?? null) === {json.dumps(first)}"
    )


def test_sixty_runs_page_filter_search_tag_rename_and_delete(gs_page: Page, sixty: LiveServer) -> None:
    page = gs_page
    page.goto(sixty.url + "/")
    shows(page, "60 runs", "run59")
    assert row_ids(page) == [f"run{i:02d}" for i in range(59, 34, -1)]  # 25, newest first
    expect(page.locator("#page-info")).to_have_text("1–25 of 60")
    expect(page.locator("#page-newer")).to_be_disabled()
    page.click("#page-older")
    shows(page, "60 runs", "run34")
    page.click("#page-older")
    shows(page, "60 runs", "run09")
    assert row_ids(page) == [f"run{i:02d}" for i in range(9, -1, -1)]
    expect(page.locator("#page-info")).to_have_text("51–60 of 60")
    expect(page.locator("#page-older")).to_be_disabled()
    # a name is the row's link; an unnamed run's is its id
    expect(page.locator('tr[data-run="run05"] a.run-name')).to_have_text("sweep lr 5")
    expect(page.locator('tr[data-run="run04"] a.run-id')).to_have_text("run04")

    page.select_option("#runs-status", "failed")  # a filter starts again at the first page
    shows(page, "20 runs match", "run58")
    assert set(page.locator("#runs tbody .status").all_inner_texts()) == {"failed"}
    page.fill("#runs-q", "SWEEP LR")  # search: names (and ids, tags), any case
    shows(page, "4 runs match", "run55")
    assert row_ids(page) == ["run55", "run40", "run25", "run10"]
    expect(page.locator("#runs-pager")).to_be_hidden()
    page.select_option("#runs-cell", "gru")
    shows(page, "2 runs match", "run40")
    page.click("#runs-clear")
    shows(page, "60 runs", "run59")
    page.select_option("#runs-task", "copy")
    shows(page, "15 runs match", "run56")
    page.click("#runs-clear")

    # a tag chip filters by its tag
    page.locator('tr[data-run="run56"] button.chip', has_text="baseline").click()
    shows(page, "9 runs match", "run56")
    expect(page.locator("#runs-tag")).to_have_value("baseline")

    # rename and retag in place; a bad tag is refused with the server's sentence, nothing changed
    page.problems.allowed.append("422")  # type: ignore[attr-defined]  # the refused edit's response
    row = page.locator('tr[data-run="run49"]')
    row.locator("button.edit").click()
    row.locator('input[name="run-name"]').fill("the best one")
    row.locator('input[name="run-tags"]').fill("baseline, no=good")
    row.locator('input[name="run-tags"]').press("Enter")
    expect(row.locator(".run-editor .error")).to_contain_text("'no=good'")
    row.locator('input[name="run-tags"]').fill("baseline, keeper")
    row.locator('input[name="run-tags"]').press("Enter")
    expect(row.locator("a.run-name")).to_have_text("the best one")
    expect(row.locator(".chip")).to_have_text(["baseline", "keeper"])
    stored = httpx.get(f"{sixty.url}/api/runs/run49").json()
    assert (stored["name"], stored["tags"]) == ("the best one", ["baseline", "keeper"])
    screenshot(page, "dashboard-sixty-runs")

    # bulk delete: tick every run on the page (the 9 baseline runs), delete them at once
    page.check("#select-page")
    expect(page.locator("#delete-selected")).to_have_text("Delete selected (9)")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-selected")
    shows(page, "0 runs match", None)
    expect(page.locator("#runs-empty")).to_have_text("No run matches these filters.")
    page.click("#runs-clear")
    shows(page, "51 runs", "run59")
    listed = httpx.get(f"{sixty.url}/api/runs", params={"limit": 500}).json()
    assert listed["total"] == 51 and not {"run49", "run56", "run00"} & {r["id"] for r in listed["items"]}


def test_the_run_and_compare_pages_name_runs_and_the_run_page_renames(
    gs_page: Page, sixty: LiveServer
) -> None:
    page = gs_page
    page.goto(sixty.url + "/compare?runs=run05,run04")
    # a named run by its name, an unnamed one by what it is: no longer "gru · gru"
    expect(page.locator(".col-head h2 a")).to_have_text(["sweep lr 5", "gru H=16 · copy"])
    desc = page.locator('.column[data-run="run05"] .desc')
    expect(desc).to_have_text("gru H=16 · adding · step 20/20 · run05")
    page.goto(sixty.url + "/runs/run05")
    label = page.locator("#run-label")
    expect(label.locator(".run-name")).to_have_text("sweep lr 5")
    expect(page).to_have_title("sweep lr 5 · Gatescope")
    label.locator("button.edit").click()
    label.locator('input[name="run-name"]').fill("lr 0.01, clipped")
    label.locator('input[name="run-tags"]').fill("sweep, keep")
    label.locator("button.primary").click()
    expect(label.locator(".run-name")).to_have_text("lr 0.01, clipped")
    expect(label.locator(".chip")).to_have_text(["sweep", "keep"])
    expect(page).to_have_title("lr 0.01, clipped · Gatescope")
    stored = httpx.get(f"{sixty.url}/api/runs/run05").json()
    assert (stored["name"], stored["tags"]) == ("lr 0.01, clipped", ["sweep", "keep"])
    page.reload()  # and it stays
    expect(label.locator(".run-name")).to_have_text("lr 0.01, clipped")


def test_a_preset_names_its_runs_by_its_label(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    page = gs_page
    page.goto(url("/?preset=exploding"))
    page.click("#start-preset")
    page.wait_for_url(re.compile(r"/compare\?runs="))
    ids = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["runs"][0].split(",")
    for run_id in ids:
        http.post(f"/api/runs/{run_id}/stop")  # the names are what this test is about
    expect(page.locator(".col-head h2 a")).to_have_text(
        ["exploding · clipped at 1", "exploding · not clipped"]
    )
    assert [http.get(f"/api/runs/{i}").json()["name"] for i in ids] == [
        "exploding · clipped at 1",
        "exploding · not clipped",
    ]
