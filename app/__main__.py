"""``python -m app``: serve Gatescope with uvicorn on the configured host and port.

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        serve()
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m app", description="Serve Gatescope, or import a run file."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser(
        "import", help="bring a run file (gatescope.watch(server=None)) into a server"
    )
    imports.add_argument("file", help="the .gsrun file")
    imports.add_argument("--server", default=os.environ.get("GATESCOPE_SERVER") or DEFAULT_SERVER)
    imports.add_argument("--token", default=os.environ.get("GATESCOPE_TOKEN"))
    args = parser.parse_args(argv)
    return import_file(args.file, args.server, args.token)


if __name__ == "__main__":
    sys.exit(main())
