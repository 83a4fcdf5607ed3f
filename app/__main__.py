"""``python -m app`` (or the ``gatescope`` command): serve Gatescope with uvicorn on the configured
host and port (also ``gatescope serve``).

``python -m app import FILE [--server URL] [--token T]``: bring a run file that
`gatescope.watch(server=None)` wrote into a running server (POST /api/import; the server checks it
whole and stores all of it or nothing). The server defaults to $GATESCOPE_SERVER, else
http://127.0.0.1:8000; the token to $GATESCOPE_TOKEN. Prints the new runs (and any problem the
server found in the file but could keep, e.g. a last record cut short); exits 1 with the server's
sentence if it refused the file, 2 if the file cannot be read or the server cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx
import uvicorn

from app.settings import get_settings

DEFAULT_SERVER = "http://127.0.0.1:8000"
IMPORT_TIMEOUT = 600.0  # seconds: a 512 MiB file is checked whole before anything is stored


def serve() -> None:
    settings = get_settings()
    # per-message deflate would compress every probe frame once per viewer: off
    uvicorn.run("app.main:app", host=settings.host, port=settings.port, ws_per_message_deflate=False)


def import_file(path: str, server: str, token: str | None) -> int:
    """POST the run file at `path` to `server`; the exit code."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    headers = {"Content-Type": "application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = httpx.post(
            f"{server.rstrip('/')}/api/import", content=data, headers=headers, timeout=IMPORT_TIMEOUT
        )
    except httpx.HTTPError as exc:
        print(f"cannot reach the server at {server}: {exc}", file=sys.stderr)
        return 2
    try:
        body = answer.json()
    except ValueError:
        body = {"detail": answer.text}
    if answer.status_code != 201:
        print(
            f"the server refused {path} ({answer.status_code}): {body.get('detail', body)}", file=sys.stderr
        )
        return 1
    for run in body["runs"]:
        module = run["config"]["module"] or "(the model)"
        url = f"{server.rstrip('/')}/runs/{run['id']}"
        print(f"{run['id']}  {run['status']}  {module}  {run['step']} steps  {url}")
    for warning in body["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def report_file(path: str, out: str, budget_mb: float) -> int:
    """Write the one-file report of each run in a run file (one per watched module): the same
    file GET /api/runs/{id}/report makes, from a temporary storage, with no server."""
    from app.services.attached import AttachedRuns
    from app.services.report import report_parts
    from app.services.storage import Storage
    from app.services.views import Views
    from gatescope.bundle import plotly_js, static_dir
    from gatescope.report import build_report

    with tempfile.TemporaryDirectory(prefix="gatescope-report-") as tmp, Storage(Path(tmp)) as storage:
        try:
            group = AttachedRuns(storage).import_file(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            print(f"cannot read {path}: {exc}", file=sys.stderr)
            return 1
        target = Path(out)
        for i, run in enumerate(group.runs):
            record = storage.get_run(run.id)
            assert record is not None  # just imported
            data, frames = report_parts(storage, Views(storage), record)
            try:
                html = build_report(data, frames, static_dir(), plotly_js(), budget_mb)
            except ValueError as exc:
                print(str(exc), file=sys.stderr)
                return 1
            where = target if len(group.runs) == 1 else target.with_name(f"{target.stem}-{i}{target.suffix}")
            where.write_text(html, encoding="utf-8")
            print(f"{where}  {run.config.module or '(the model)'}  {len(html) / 2**20:.1f} MB")  # type: ignore[union-attr]
        for warning in group.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def _prog() -> str:
    """How this was started: `gatescope` (the console script) or `python -m app`."""
    return "gatescope" if Path(sys.argv[0]).name == "gatescope" else "python -m app"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv == ["serve"]:
        serve()
        return 0
    parser = argparse.ArgumentParser(
        prog=_prog(), description="Serve Gatescope, import a run file, or write a run file's report."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve Gatescope (the default with no command)")
    imports = commands.add_parser(
        "import", help="bring a run file (gatescope.watch(server=None)) into a server"
    )
    imports.add_argument("file", help="the .gsrun file")
    imports.add_argument("--server", default=os.environ.get("GATESCOPE_SERVER") or DEFAULT_SERVER)
    imports.add_argument("--token", default=os.environ.get("GATESCOPE_TOKEN"))
    reports = commands.add_parser("report", help="a run file's one-file HTML report, with no server")
    reports.add_argument("file", help="the .gsrun file")
    reports.add_argument("-o", "--out", required=True, help="the HTML file to write")
    reports.add_argument("--budget-mb", type=float, default=15.0, help="the file's size budget (MB)")
    args = parser.parse_args(argv)
    if args.command == "report":
        return report_file(args.file, args.out, args.budget_mb)
    return import_file(args.file, args.server, args.token)


if __name__ == "__main__":
    sys.exit(main())
