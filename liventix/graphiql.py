"""GraphiQL, served entirely by this API.

The page's scripts and styles come from `web/node_modules` (the `graphiql`, `react`,
`react-dom` and `graphql-ws` packages installed by the setup from the npm registry,
pinned in `web/package-lock.json`), served under `/graphiql/static/`. Nothing loads
from a CDN, so the playground works offline and passes a strict CSP. An installed
package finds them through the GRAPHIQL_ASSETS_DIR setting.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from liventix.settings import DEFAULT_GRAPHIQL_ASSETS_DIR

ASSETS_DIR = DEFAULT_GRAPHIQL_ASSETS_DIR
TEMPLATE = Path(__file__).parent / "templates" / "graphiql.html"
STATIC_PREFIX = "/graphiql/static"

# Only these files are exposed, not the whole node_modules tree.
ASSETS = (
    "react/umd/react.production.min.js",
    "react-dom/umd/react-dom.production.min.js",
    "graphiql/graphiql.min.js",
    "graphiql/graphiql.min.css",
    "graphql-ws/umd/graphql-ws.min.js",
)


def assets_installed(assets_dir: Path = ASSETS_DIR) -> bool:
    return all((assets_dir / asset).is_file() for asset in ASSETS)


def page(assets_dir: Path = ASSETS_DIR) -> str:
    """The playground page, or a page explaining how to install the missing assets."""
    if not assets_installed(assets_dir):
        return (
            "<!doctype html><title>GraphiQL unavailable</title><p>GraphiQL's assets are not "
            "installed. Run <code>make setup</code> (it installs them from the npm registry "
            "into <code>web/node_modules</code>).</p>"
        )
    return TEMPLATE.read_text().replace("{{STATIC}}", STATIC_PREFIX)


class AssetFiles(StaticFiles):
    """Static files restricted to the GraphiQL assets listed above."""

    def __init__(self, assets_dir: Path = ASSETS_DIR) -> None:
        super().__init__(directory=assets_dir, check_dir=False)

    async def get_response(self, path: str, scope: object) -> Response:
        if path not in ASSETS:
            return Response("Not Found", status_code=404)
        response = await super().get_response(path, scope)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response
