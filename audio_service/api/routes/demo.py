"""``GET /demo``: the browser demo (static HTML/JS; it calls the public API like any client)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from audio_service.errors import NotFoundError

DEMO_DIR = Path(__file__).resolve().parents[2] / "static" / "demo"  # audio_service/static/demo
_MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

router = APIRouter(tags=["demo"], include_in_schema=False)


@router.get("/demo")
async def demo_index() -> RedirectResponse:
    # a trailing slash makes the page's relative URLs (app.js, pcm-worklet.js) resolve under /demo/
    return RedirectResponse("/demo/")


@router.get("/demo/{name:path}")
async def demo_file(name: str) -> FileResponse:
    """The demo's files; only names that exist directly in the demo folder are served."""
    files = {p.name: p for p in DEMO_DIR.iterdir() if p.suffix in _MEDIA_TYPES}
    path = files.get(name or "index.html")
    if path is None:
        raise NotFoundError(f"No demo file {name!r}.")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
