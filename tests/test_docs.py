"""The README stays a front door (short), and no relative link of the README or the manual (docs/) is broken.
`mkdocs build --strict` (CI: .ci/run) checks the site itself; it runs here too where mkdocs is installed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 15_000
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links and images outside code (fenced blocks, inline code spans)."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = LINK.findall(text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_readme_is_at_most_15000_characters():
    n = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert n <= README_LIMIT, f"README.md has {n} characters; move reference text into docs/ (limit {README_LIMIT})"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(path):
    broken = [t for t in relative_links(path.read_text(encoding="utf-8"))
              if not (path.parent / t.split("#", 1)[0]).exists()]
    assert not broken, f"{path.relative_to(ROOT)}: links to missing files: {broken}"


def test_the_link_reader_sees_links_and_skips_code():
    text = "[a](docs/x.md#y) ![b](img.png) [c](https://e.org) [d](#here)\n`[e](no.md)`\n```\n[f](no.md)\n```\n"
    assert relative_links(text) == ["docs/x.md#y", "img.png"]


def test_every_page_in_the_nav_exists():
    nav = re.findall(r":\s*([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert "cli.md" in nav and "index.md" in nav
    assert not [p for p in nav if not (ROOT / "docs" / p).exists()]


def test_mkdocs_build_strict(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "scenes2real render" in (tmp_path / "site" / "cli" / "index.html").read_text()
