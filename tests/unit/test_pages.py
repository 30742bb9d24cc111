"""The service's own pages: the bundled ones when built, a working fallback and one warning when
not."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from api.http.pages import BUILD_HINT, WebPages
from api.settings.config import Settings
from api.wiring.app import create_app


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "api.http.pages"
    ]


def test_without_a_build_graphiql_falls_back_to_the_cdn_page_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app(Settings(data_dir=tmp_path, jwt_secret="x" * 32), static_dir=tmp_path)
    (warning,) = _warnings(caplog)
    assert BUILD_HINT in warning.getMessage()
    assert "event=web_assets_missing" in warning.getMessage()
    assert app is not None
    pages = WebPages(directory=tmp_path, version=None)
    assert not pages.built
    assert "unpkg.com" in pages.graphiql_html()
    assert pages.dashboard_html() is None


def test_with_a_build_the_pages_load_only_the_bundles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "manifest.json").write_bytes(orjson.dumps({"built": "2024-01-01T00:00:00Z"}))
    with caplog.at_level(logging.WARNING):
        pages = WebPages.load(tmp_path)
    assert _warnings(caplog) == []
    graphiql = pages.graphiql_html()
    assert '<script type="module" src="/static/graphiql.js?v=2024-01-01T00:00:00Z">' in graphiql
    assert "http" not in graphiql
    dashboard = pages.dashboard_html()
    assert dashboard is not None
    assert "/static/dashboard.js" in dashboard
    assert "http" not in dashboard
