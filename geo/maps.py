"""The folium map shell: every map page draws with our own copies of Leaflet and its plugins.

folium points its maps and plugins at CDNs through the class attributes ``default_js`` and
``default_css``; a control room may have no internet, so ``localise`` rewrites them per element
to files under ``static/vendor/`` (installed from npm) and drops the ones no page of ours uses.
"""
from __future__ import annotations

from typing import Iterable

import folium
from branca.element import Element, MacroElement
from flask import Flask, current_app, render_template, url_for

from geo.security import nonced

__all__ = ["VENDOR_ASSETS", "localise", "base_map", "render_map", "init_app"]

# folium's asset names -> our vendored file; a name missing here is dropped from the page.
VENDOR_ASSETS = {
    "leaflet": "leaflet.js",
    "leaflet_css": "leaflet.css",
    "markerclusterjs": "leaflet.markercluster.js",
    "markerclustercss": "MarkerCluster.css",
    "markerclusterdefaultcss": "MarkerCluster.Default.css",
    "Leaflet_Realtime_js": "leaflet-realtime.js",
    "leaflet_geoman_js": "leaflet-geoman.js",
    "leaflet_geoman_css": "leaflet-geoman.css",
}


def _vendor_url(filename: str) -> str:
    return url_for("static", filename=f"vendor/{filename}")


def _localised(assets: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, _vendor_url(VENDOR_ASSETS[name])) for name, _ in assets if name in VENDOR_ASSETS]


def localise(element: MacroElement) -> MacroElement:
    """Point ``element`` and all its children at our vendored assets (in place)."""
    stack = [element]
    while stack:
        item = stack.pop()
        for attribute in ("default_js", "default_css"):
            assets = getattr(item, attribute, None)
            if assets:
                setattr(item, attribute, _localised(assets))
        stack.extend(item._children.values())
    return element


def base_map(location: tuple[float, float], zoom_start: int = 13, **kwargs) -> folium.Map:
    """A map with the configured base layer (``BASEMAP_URL``; ``none`` draws no base map)."""
    tiles_url = current_app.config.get("BASEMAP_URL", "none")
    tiles = None if tiles_url.lower() == "none" else folium.TileLayer(
        tiles=tiles_url, attr=current_app.config.get("BASEMAP_ATTRIBUTION", ""), name="Base map",
        max_zoom=19, control=False,
    )
    fmap = folium.Map(location=location, zoom_start=zoom_start, tiles=None, prefer_canvas=True,
                      control_scale=True, **kwargs)
    if tiles is not None:
        tiles.add_to(fmap)
    return fmap


def render_map(fmap: folium.Map, template: str, **context) -> str:
    """Render ``fmap`` into one of our templates as ``map_header``, ``map_html``, ``map_script``;
    folium's inline scripts get the response's CSP nonce (the template puts it on ``map_script``'s)."""
    localise(fmap)
    figure = fmap.get_root()
    figure.render()
    return render_template(
        template,
        map_header=nonced(figure.header.render()),
        map_html=nonced(figure.html.render()),
        map_script=figure.script.render(),
        map_name=fmap.get_name(),
        **context,
    )


def script(js: str) -> Element:
    """A script element to add to a figure's script section."""
    return Element(js)


def init_app(app: Flask) -> None:
    """Nothing to register yet; kept so packages can rely on the shell being initialised."""
    app.jinja_env.globals.setdefault("vendor_url", _vendor_url)
