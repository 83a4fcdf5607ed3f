"""``python -m app``: serve Gatescope with uvicorn on the configured host and port."""

import uvicorn

from app.settings import get_settings


def main() -> None:
    settings = get_settings()
    # per-message deflate would compress every probe frame once per viewer: off
    uvicorn.run("app.main:app", host=settings.host, port=settings.port, ws_per_message_deflate=False)


if __name__ == "__main__":
    main()
