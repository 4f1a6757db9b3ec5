"""The demo page embeds the loader snippet from its one source, filled in for the demo workspace."""

from __future__ import annotations

from importlib import resources

import asyncpg

import storage

SNIPPET = resources.files("gateway").joinpath("static", "sdk", "v1", "snippet.js").read_text()


async def test_demo_page_embeds_the_snippet_file_filled_in(client, pool: asyncpg.Pool) -> None:  # type: ignore[no-untyped-def]
    workspace = (await storage.create_workspace(pool, "demo", identity_mode="off")).workspace
    resp = await client.get("/demo")
    assert resp.status == 200
    page = await resp.text()
    endpoint = f"http://{client.host}:{client.port}"
    filled = SNIPPET.replace("{{ENDPOINT}}", endpoint).replace("{{SITE_ID}}", workspace.site_id)
    assert f"<script>\n{filled}</script>" in page
    assert "{{" not in page
