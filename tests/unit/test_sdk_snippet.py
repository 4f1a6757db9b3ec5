"""The loader snippet has one source, `gateway/static/sdk/v1/snippet.js`; nothing else may drift from it.

The demo page gets it at serve time (`{{SNIPPET}}` in `gateway/sdk.py`) and the browser and Node tests
read the file, so the docs' copy is the only one written out: it must equal the file, byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "gateway" / "static" / "sdk" / "v1" / "snippet.js"
# The first fenced html block of the "Paste the snippet" section.
DOCS_BLOCK = re.compile(r"^## 1\. Paste the snippet\n.*?^```html\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def test_docs_show_the_snippet_file_byte_for_byte() -> None:
    match = DOCS_BLOCK.search((ROOT / "docs" / "sdk.md").read_text(encoding="utf-8"))
    assert match, "docs/sdk.md lost its '## 1. Paste the snippet' section or its ```html block"
    assert match.group(1) == "<script>\n" + SNIPPET.read_text(encoding="utf-8") + "</script>\n"


def test_snippet_has_the_placeholders_the_demo_and_the_docs_fill() -> None:
    text = SNIPPET.read_text(encoding="utf-8")
    assert text.endswith(");\n")
    assert '"{{ENDPOINT}}","{{SITE_ID}}"' in text


def test_no_other_copy_of_the_snippet() -> None:
    """The stub's queueing line appears in the snippet file and in docs/sdk.md only (and in this test)."""
    marker = "m.q.push([k,[].slice.call(arguments)])"
    places = [ROOT / "README.md", ROOT / "docs", ROOT / "gateway", ROOT / "tests", ROOT / "bench"]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*")) if p.is_file()]
    holders = {
        p.relative_to(ROOT).as_posix()
        for p in files
        if p.suffix in {".md", ".html", ".js", ".mjs", ".py"}
        and p != Path(__file__).resolve()
        and marker in p.read_text(encoding="utf-8")
    }
    assert holders == {"docs/sdk.md", "gateway/static/sdk/v1/snippet.js"}
