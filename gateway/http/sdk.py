"""The web SDK script, its analytics.js plugin and the demo page, served from the package's `static/` folder.

The demo page has three placeholders: `{{SNIPPET}}` takes the loader snippet from its one source,
`sdk/v1/snippet.js` (also shown in docs/sdk.md), then `{{ENDPOINT}}` and `{{SITE_ID}}`, in the page
and the snippet, take escaped values: plain replaces (a template engine would be one more dependency
for three tokens).
"""

from __future__ import annotations

import html
import json
from importlib import resources

from aiohttp import web

from ..core import demo as demo_core
from .keys import POOL
from .views import json_response, setup_view

__all__ = ["PLUGIN_PATH", "SDK_PATH", "demo", "demo_setup", "plugin_script", "script"]

SDK_PATH = "/sdk/v1/mailslot.js"
PLUGIN_PATH = "/sdk/v1/analytics-plugin.js"


def _static(name: str) -> bytes:
    return resources.files("gateway").joinpath("static", *name.split("/")).read_bytes()


def _script(name: str) -> web.Response:
    """A script of the web SDK, cached briefly so a release reaches pages within minutes."""
    return web.Response(
        body=_static(name),
        content_type="application/javascript",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


async def script(request: web.Request) -> web.Response:
    return _script("sdk/v1/mailslot.js")


async def plugin_script(request: web.Request) -> web.Response:
    """The analytics.js plugin (decision 0026): served like the SDK, which it loads."""
    return _script("sdk/v1/analytics-plugin.js")


async def demo(request: web.Request) -> web.Response:
    """A page of a pretend product with the snippet pasted in, for the demo workspace."""
    workspace = await demo_core.demo_workspace(request.app[POOL])
    endpoint = f"{request.scheme}://{request.host}"
    page = _static("demo.html").decode().replace("{{SNIPPET}}", _static("sdk/v1/snippet.js").decode())
    # json.dumps()[1:-1] makes a value safe inside a JS string; html.escape inside markup.
    for token, value in (("{{ENDPOINT}}", endpoint), ("{{SITE_ID}}", workspace.site_id)):
        page = page.replace(token, html.escape(json.dumps(value)[1:-1]))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def demo_setup(request: web.Request) -> web.Response:
    """The demo workspace's setup status, which the demo page polls (no credentials: demo only)."""
    workspace, setup = await demo_core.demo_setup(request.app[POOL])
    return json_response(setup_view(setup, workspace.identity_mode), headers={"Cache-Control": "no-store"})
