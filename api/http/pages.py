"""The service's own pages: GraphiQL and the operations dashboard, bundled from `web/`.

The bundles live in `api/static` (built by `npm ci && npm run build` in `web/`, which the set-up
scripts and the Dockerfile run), so the wheel ships them and the pages work without internet.
Without them the service still answers: GraphiQL falls back to strawberry's page, which loads
from a public CDN, and the dashboard says how to build it; a warning at start says so once.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

import api

logger = logging.getLogger(__name__)

STATIC_DIR = Path(api.__file__).resolve().parent / "static"
"""Where `web/build.mjs` writes the bundles (inside the `api` package, so they ship in the wheel;
found from the package, not this module, so that moving this module does not lose them)."""
MANIFEST = "manifest.json"
BUILD_HINT = "cd web && npm ci && npm run build"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/static/{name}.css?v={version}">
</head>
<body>
<div id="{name}">Loading…</div>
<script type="module" src="/static/{name}.js?v={version}"></script>
</body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Orders dashboard</title></head>
<body>
<h1>The dashboard is not built</h1>
<p>This installation has no web assets. Build them with <code>{hint}</code> and restart.</p>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class WebPages:
    """The HTML of the pages, from the bundles in `directory` when they are there."""

    directory: Path
    version: str | None
    """The build's timestamp (cache-busting for the bundles); None when there is no build."""

    @classmethod
    def load(cls, directory: Path = STATIC_DIR) -> WebPages:
        """The pages for the bundles in `directory`; warns once when they are missing."""
        try:
            manifest = orjson.loads((directory / MANIFEST).read_bytes())
            version = str(manifest["built"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning(
                "event=web_assets_missing directory=%s fallback=cdn_graphiql "
                "hint=%r (GraphiQL loads from a public CDN; /dashboard is unavailable)",
                directory,
                BUILD_HINT,
            )
            version = None
        return cls(directory=directory, version=version)

    @property
    def built(self) -> bool:
        """The bundles are there."""
        return self.version is not None

    def graphiql_html(self) -> str:
        """The bundled GraphiQL, or strawberry's CDN page without a build."""
        if self.version is None:
            return get_graphql_ide_html(graphql_ide="graphiql")
        return self._page("graphiql", "Orders GraphiQL", self.version)

    def dashboard_html(self) -> str | None:
        """The dashboard, or None without a build."""
        if self.version is None:
            return None
        return self._page("dashboard", "Orders dashboard", self.version)

    @staticmethod
    def _page(name: str, title: str, version: str) -> str:
        return _PAGE.format(name=name, title=html.escape(title), version=html.escape(version))

    async def dashboard(self, request: Request) -> Response:
        """GET /dashboard: the page (it asks for a staff token itself); 503 without a build."""
        page = self.dashboard_html()
        if page is None:
            return HTMLResponse(_MISSING.format(hint=html.escape(BUILD_HINT)), status_code=503)
        return HTMLResponse(page)
