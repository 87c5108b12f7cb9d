"""The field app page (城管通) for phones: HTML shell, manifest and service worker.

No folium here: the page is a small app shell (Leaflet from /static/vendor, script and style
in templates/field.*) that loads its tasks from /field/tasks, so the service worker can cache
the shell and the last task list for a poor signal. Every value reaches the script as JSON
with `<`, `>`, `&` and `'` escaped; the script shows values with textContent only.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from maps.escaping import html_text

CACHE_VERSION = "citygrid-field-v1"
# The app shell the service worker keeps for offline use.
SHELL = ("/field", "/field/manifest.webmanifest", "/field/icon.svg",
         "/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet/leaflet.css")
FIELD_ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 192 192">'
    '<rect width="192" height="192" rx="32" fill="#1565c0"/>'
    '<path d="M96 36c-25 0-44 19-44 43 0 33 44 77 44 77s44-44 44-77c0-24-19-43-44-43z" '
    'fill="#fff"/><circle cx="96" cy="80" r="16" fill="#1565c0"/></svg>')


def _template(name: str) -> str:
    return resources.files("maps").joinpath("templates", name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """`value` as JSON that is safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, code)
    return text


def field_page(*, role: str, username: str, display_name: str, role_label: str,
               categories: list[dict[str, str]], worker: bool = True) -> str:
    """The /field page for a signed-in user of `role`; `worker`: register the service worker."""
    # The worker and what it caches are fetched by the browser with the login cookie only:
    # under header sign-in (API clients, bench/pages.py) registering it is a 401 console error.
    config = {"role": role, "username": username, "categories": categories,
              "worker": "/field-sw.js" if worker else None, "scope": "/field"}
    return (_template("field.html")
            .replace("{{WHO}}", str(html_text(f"{display_name}（{role_label}）")))
            .replace("{{CSS}}", _template("field.css"))
            .replace("{{CONFIG}}", script_json(config))
            .replace("{{JS}}", _template("field.js")))


def field_manifest() -> dict[str, Any]:
    """The web app manifest: installable, standalone, opening /field."""
    return {"name": "城管通 · 数字化城管", "short_name": "城管通", "lang": "zh-CN",
            "start_url": "/field", "scope": "/field", "display": "standalone",
            "background_color": "#ffffff", "theme_color": "#1565c0",
            "icons": [{"src": "/field/icon.svg", "sizes": "any", "type": "image/svg+xml",
                       "purpose": "any"}]}


def service_worker() -> str:
    """The service worker script with its cache name and app shell filled in."""
    return (_template("field_sw.js").replace("{{CACHE}}", script_json(CACHE_VERSION))
            .replace("{{SHELL}}", script_json(list(SHELL))))
