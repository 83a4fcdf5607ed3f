"""The new-run form's guardrails in a real browser: the estimated cost as the person edits and the
server's limit before they press start, 422s in the form's words with the field marked, one rule
for empty fields, a custom text linked by its stored id, and queued runs saying how many are
ahead of them."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.core.cells import CELLS
from tests.browser.conftest import poll, screenshot
from tests.live_server import LiveServer, serve

MONSTER: dict[str, Any] = {  # the 3-layer bidirectional H=512, T=1000 run
    "cell": "lstm",
    "hidden_size": 512,
    "num_layers": 3,
    "bidirectional": True,
    "task": {"name": "adding", "seq_len": 1000},
}


def open_form(page: Page, url: Callable[[str], str], config: dict[str, Any] | None = None) -> None:
    query = "" if config is None else "?config=" + urllib.parse.quote(json.dumps(config))
    page.goto(url("/" + query))
    expect(page.locator("#start-run")).to_be_visible()


def field(name: str) -> str:
    return f'#run-form [name="{name}"]'


def says(page: Page, text: str | re.Pattern[str]) -> None:
    """The form's error line comes to say `text` (exactly, or matching the pattern)."""
    expect(page.locator("#form-error")).to_have_text(text)


def invalid(page: Page) -> list[str]:
    names: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('#run-form [aria-invalid=true]')].map((c) => c.name)"
    )
    return names


def total_runs(http: httpx.Client) -> int:
    total: int = http.get("/api/runs", params={"limit": 1}).json()["total"]
    return total


def test_the_estimate_follows_the_edits_and_the_limit_shows_before_start(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    open_form(gs_page, url, {"cell": "gru", "hidden_size": 16, "task": {"name": "adding", "seq_len": 20}})
    small = poll(gs_page, "() => document.querySelector('#form-estimate')?.textContent")
    assert small.startswith("≈ ") and " per step · " in small and " MB · ETA " in small
    api = http.post(
        "/api/runs/estimate",
        json={"cell": "gru", "hidden_size": 16, "task": {"name": "adding", "seq_len": 20}},
    )
    assert f"{api.json()['memory_bytes'] / 2**20:.3g} MB" in small  # the server's own numbers
    for name, value in (("hidden_size", "512"), ("num_layers", "3"), ("param.seq_len", "1000")):
        gs_page.fill(field(name), value)
    gs_page.check(field("bidirectional"))
    gs_page.select_option(field("cell"), "lstm")
    limit = poll(gs_page, "() => document.querySelector('#form-estimate .limit')?.textContent")
    assert (
        "beyond this server's limit of 10 s (GATESCOPE_MAX_STEP_SECONDS)" in limit
        and "lower hidden size" in limit
    )
    screenshot(gs_page, "form-limit")
    before = total_runs(http)
    gs_page.problems.allowed.append("status of 422")  # type: ignore[attr-defined]
    gs_page.click("#start-run")
    says(gs_page, re.compile("GATESCOPE_MAX_RUN_MEMORY_MB"))
    assert gs_page.url.startswith(url("/")) and total_runs(http) == before  # refused, nothing stored


def test_a_422_names_the_field_by_its_label_and_marks_it(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    open_form(gs_page, url)
    gs_page.problems.allowed.append("status of 422")  # type: ignore[attr-defined]
    before = total_runs(http)
    gs_page.fill(field("hidden_size"), "513")
    says(gs_page, "hidden size must be at most 512")  # as they type: the estimate's 422
    assert invalid(gs_page) == ["hidden_size"]
    expect(gs_page.locator("label.field.invalid")).to_have_count(1)
    gs_page.click("#start-run")
    says(gs_page, "hidden size must be at most 512")  # and at start
    screenshot(gs_page, "form-field-error")
    gs_page.fill(field("hidden_size"), "64")
    expect(gs_page.locator("#form-error")).to_be_hidden()
    assert invalid(gs_page) == []
    gs_page.fill(field("optimizer.lr"), "0")
    says(gs_page, "learning rate must be greater than 0")
    gs_page.fill(field("optimizer.lr"), "0.003")
    gs_page.fill(field("param.seq_len"), "5000")
    says(gs_page, "seq_len must be at most 2000, got 5000")  # a task's own check
    assert invalid(gs_page) == ["param.seq_len"]
    assert total_runs(http) == before


def test_one_rule_for_empty_fields(gs_page: Page, url: Callable[[str], str], http: httpx.Client) -> None:
    """An empty field with a placeholder is left out (the placeholder says what that means); any
    other empty field is null in the config, never a default, and named before anything is sent."""
    open_form(gs_page, url)
    controls = gs_page.evaluate(
        "() => [...document.querySelectorAll('#run-form input[type=number], #run-form input[type=text]')]"
        ".filter((c) => !c.closest('[hidden]')).map((c) => [c.name, c.placeholder])"
    )
    with_placeholder = {"name", "tags", "init.forget_bias", "tbptt", "probe_budget", "storage_mb"}
    assert {n for n, p in controls if p} == with_placeholder
    assert len([n for n, p in controls if not p]) >= 10
    before = total_runs(http)
    posted: list[str] = []
    gs_page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    for name, placeholder in controls:
        open_form(gs_page, url)
        gs_page.fill(field(name), "3")  # an edit, then the field emptied
        gs_page.fill(field(name), "")
        *outer, key = name.replace("param.", "task.").split(".")
        config = "JSON.parse(new URL(location.href).searchParams.get('config') || '{}')"
        held = f"(() => {{ let h = {config}; for (const k of {json.dumps(outer)}) h = h?.[k]; return h; }})()"
        if placeholder:  # left out: the server's meaning of "none" ("full", "off", "default")
            poll(gs_page, f"() => {{ const h = {held}; return h && !({json.dumps(key)} in h); }}")
            continue
        poll(
            gs_page, f"() => {{ const h = {held}; return h && h[{json.dumps(key)}] === null; }}"
        )  # not a default
        posted.clear()
        gs_page.click("#start-run")
        label = gs_page.locator(field(name)).evaluate(
            "(c) => c.closest('label').querySelector('span').textContent"
        )
        says(gs_page, f"{label} is empty: fill it in")
        assert invalid(gs_page) == [name]
        assert not any(u.endswith("/api/runs") for u in posted), name  # nothing sent
    assert total_runs(http) == before


def test_a_custom_text_is_linked_by_its_stored_id(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(4000))  # 232 kB
    open_form(
        gs_page,
        url,
        {"cell": "lstm", "task": {"name": "char_lm", "corpus": "custom", "text": "placeholder " * 10}},
    )
    # pasted in one go, as a person would: Playwright's fill() types it through insertText, which
    # takes Chromium a time quadratic in the lines (69 s for these 4,000 on a busy 2-core machine)
    gs_page.locator(field("param.text")).evaluate(
        "(area, text) => { area.value = text; area.dispatchEvent(new Event('input', { bubbles: true })); }",
        text,
    )
    link = poll(gs_page, "() => new URL(location.href).searchParams.get('text')")
    stored = http.post("/api/texts", json={"text": text}).json()  # idempotent: the same id
    assert link == f"@{stored['id']}"
    assert len(gs_page.url) < 2000 and "quick brown fox" not in urllib.parse.unquote(gs_page.url)
    gs_page.goto(gs_page.url)  # the link, opened: the text comes back from the store
    expect(gs_page.locator(field("param.text"))).to_have_value(text)
    assert gs_page.locator(field("param.corpus")).input_value() == "custom"
    gs_page.click("#copy-link")
    assert "text=%40" + stored["id"] in gs_page.url or f"text=@{stored['id']}" in gs_page.url
    gs_page.problems.allowed.append("status of 404")  # type: ignore[attr-defined]
    gs_page.goto(gs_page.url.replace(stored["id"], "0" * 32))  # a link whose text is gone
    says(gs_page, re.compile("there is no text with id"))


@pytest.fixture
def one_slot(tmp_path: Path) -> Iterator[LiveServer]:
    with serve(tmp_path / "one-slot", GATESCOPE_MAX_RUNS="1") as live:
        yield live


def test_queued_runs_say_how_many_are_ahead(gs_page: Page, one_slot: LiveServer) -> None:
    slow = {
        "cell": "lstm",
        "hidden_size": 8,
        "task": {"name": "adding", "seq_len": 10},
        "steps": 100_000,
        "batch_size": 4,
    }
    with httpx.Client(base_url=one_slot.url, timeout=30) as http:
        ids = [http.post("/api/runs", json={**slow, "name": f"slow {i}"}).json()["id"] for i in range(3)]
        gs_page.goto(one_slot.url + "/")
        for run_id, label in zip(ids[1:], ("queued (0 ahead)", "queued (1 ahead)"), strict=True):
            expect(gs_page.locator(f'tr[data-run="{run_id}"] .status')).to_have_text(label)
        screenshot(gs_page, "dashboard-queued")
        gs_page.goto(one_slot.url + f"/runs/{ids[2]}")
        expect(gs_page.locator("#run-status")).to_have_text("queued (1 ahead)")
        http.post(f"/api/runs/{ids[0]}/stop")  # the queue moves up: the page hears it
        expect(gs_page.locator("#run-status")).to_have_text("queued (0 ahead)")
        for run_id in ids:
            http.post(f"/api/runs/{run_id}/stop")


def test_a_run_is_named_and_tagged_from_the_form_and_the_link_keeps_both(
    gs_page: Page, url: Callable[[str], str], http: httpx.Client
) -> None:
    config = {"cell": "gru", "hidden_size": 8, "steps": 5, "task": {"name": "adding", "seq_len": 10}}
    open_form(gs_page, url, {**config, "name": "from a link", "tags": ["week 3", "demo"]})
    expect(gs_page.locator(field("name"))).to_have_value("from a link")
    expect(gs_page.locator(field("tags"))).to_have_value("week 3, demo")
    gs_page.problems.allowed.append("status of 422")  # type: ignore[attr-defined]
    before = total_runs(http)
    gs_page.fill(field("tags"), "week 3,")  # a blank tag is refused, not dropped
    gs_page.click("#start-run")
    expect(gs_page.locator("#form-error")).to_contain_text("tag")
    assert total_runs(http) == before
    gs_page.fill(field("name"), "my first GRU")
    gs_page.fill(field("tags"), "week 3, homework")
    poll(gs_page, "() => decodeURIComponent(location.search).includes('homework')")  # the link follows
    gs_page.click("#start-run")
    expect(gs_page).to_have_url(re.compile(r"/runs/"))
    newest = http.get("/api/runs", params={"limit": 1}).json()["items"][0]
    assert (newest["name"], newest["tags"]) == ("my first GRU", ["week 3", "homework"])
    gs_page.goto(url("/"))
    expect(gs_page.locator("#runs")).to_contain_text("my first GRU")


def form_config(page: Page, when: str = "true") -> dict[str, Any]:
    """The form's RunCreate as its link holds it (get(), written to the URL as the person edits),
    once `when` (a JS expression of it, `c`) holds."""
    config: dict[str, Any] = poll(
        page,
        "() => { const c = JSON.parse(new URL(location.href).searchParams.get('config') || 'null');"
        f" return c && ({when}) ? c : null; }}",
    )
    return config


def shown(page: Page, name: str) -> bool:
    return bool(page.locator(field(name)).evaluate("(c) => !c.closest('[hidden]')"))


def test_each_cell_gets_its_own_settings(gs_page: Page, url: Callable[[str], str]) -> None:
    """All seven cells are offered; sLSTM shows its forget gate and stabiliser (sent only for it),
    the one-way cells disable bidirectional, the cells without W_hh disable init and gain and say
    why, and forget bias is offered where the cell has a forget gate."""
    open_form(
        gs_page,
        url,
        {"cell": "lstm", "bidirectional": True, "init": {"forget_bias": 2}, "task": {"name": "adding"}},
    )
    cells = gs_page.locator(field("cell")).evaluate("(s) => [...s.options].map((o) => o.value)")
    assert cells == list(CELLS)
    assert not shown(gs_page, "slstm.forget") and not shown(gs_page, "slstm.stabilizer")
    assert "slstm" not in form_config(gs_page)
    gs_page.select_option(field("cell"), "slstm")
    assert shown(gs_page, "slstm.forget") and shown(gs_page, "slstm.stabilizer")
    expect(gs_page.locator(field("bidirectional"))).to_be_disabled()
    expect(gs_page.locator(field("init.scheme"))).to_be_enabled()  # sLSTM has R, its W_hh
    assert shown(gs_page, "init.forget_bias")
    expect(gs_page.locator("#cell-note")).to_have_text("slstm runs one way only, so bidirectional is off.")
    gs_page.select_option(field("slstm.forget"), "sigmoid")
    gs_page.uncheck(field("slstm.stabilizer"))
    cfg = form_config(gs_page, "c.slstm?.stabilizer === false")
    assert cfg["slstm"] == {"forget": "sigmoid", "stabilizer": False}
    assert cfg["bidirectional"] is False and cfg["init"]["forget_bias"] == 2
    screenshot(gs_page, "form-slstm")
    gs_page.select_option(field("cell"), "mingru")
    cfg = form_config(gs_page, "c.cell === 'mingru'")
    assert "slstm" not in cfg and cfg["bidirectional"] is False
    assert cfg["init"] == {}  # no W_hh: nothing of init is sent, the server's defaults stand
    for name in ("bidirectional", "init.scheme", "init.gain"):
        expect(gs_page.locator(field(name))).to_be_disabled()
    assert not shown(gs_page, "init.forget_bias")  # minGRU has no forget gate
    expect(gs_page.locator("#cell-note")).to_contain_text("mingru has no recurrent weights W_hh")
    screenshot(gs_page, "form-mingru")
    gs_page.select_option(field("cell"), "minlstm")
    assert shown(gs_page, "init.forget_bias")
    expect(gs_page.locator("#form-estimate")).to_contain_text(" per step · ")  # the server takes it
    gs_page.select_option(field("cell"), "gru")
    for name in ("bidirectional", "init.scheme", "init.gain"):
        expect(gs_page.locator(field(name))).to_be_enabled()
    expect(gs_page.locator("#cell-note")).to_be_hidden()
    assert form_config(gs_page, "c.cell === 'gru'")["bidirectional"] is True  # as the person left it
