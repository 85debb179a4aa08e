"""The documentation site (`make docs`): builds offline and strict from docs/, with search,
every page in the nav, and nothing fetched from another host when it is read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def _nav_files(nav: list[object]) -> list[str]:
    files: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        files.extend(_nav_files(value) if isinstance(value, list) else [str(value)])
    return files


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = _nav_files(config["nav"])
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert sorted(listed) == pages
    assert config["theme"]["font"] is False  # no Google Fonts: builds and reads offline
    assert [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]] == ["search"]


def test_the_site_builds_strict_offline_with_search(tmp_path: Path) -> None:
    site = tmp_path / "site"
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # No proxy and no route out: a plugin that fetches would fail the build.
    environment.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    index = (site / "search" / "search_index.json").read_text()
    assert "Health and readiness" in index and "SYNERGY_LOG_FORMAT" in index
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
        # Every stylesheet and script is the site's own.
        assert not re.search(r'<(?:link|script)[^>]+(?:href|src)="https?://', html), page


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [settings](settings.md#no-such-part).\n")
    (docs / "settings.md").write_text("# Settings\n\n## Something\n")
    config = (ROOT / "mkdocs.yml").read_text()
    nav_start = config.index("\nnav:")
    (tmp_path / "mkdocs.yml").write_text(
        config[:nav_start] + "\nnav:\n  - Home: index.md\n  - Settings: settings.md\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode != 0
    assert "no-such-part" in result.stderr
