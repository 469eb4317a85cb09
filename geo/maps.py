"""The folium map shell: every map page draws with our own copies of Leaflet and its plugins.

folium points its maps and plugins at CDNs through the class attributes ``default_js`` and
``default_css``; a control room may have no internet, so ``localise`` rewrites them per element
to files under ``static/vendor/`` (installed from npm) and drops the ones no page of ours uses.

The base map is not folium's: ``render_map`` hands every page static/js/basemap.js and
``geo.basemap.page_config()``, and the script adds the base layer after the page has loaded
(a local file, a tile server watched for silence, or the light layer from our own data).
"""
from __future__ import annotations

from typing import Iterable

import folium
from branca.element import Element, MacroElement
from flask import Flask, render_template, url_for
from jinja2.utils import htmlsafe_json_dumps

from geo.basemap import page_config
from geo.security import nonced

__all__ = ["VENDOR_ASSETS", "VECTOR_GRID", "localise", "base_map", "basemap_scripts", "render_map", "init_app"]

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
# Leaflet.VectorGrid draws a BASEMAP_FILE of vector tiles (npm's leaflet.vectorgrid, bundled build).
VECTOR_GRID = "Leaflet.VectorGrid.bundled.min.js"


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
    """A map without a base layer of folium's: ``render_map`` gives the page its base map."""
    return folium.Map(location=location, zoom_start=zoom_start, tiles=None, prefer_canvas=True,
                      control_scale=True, **kwargs)


def basemap_scripts(config: dict) -> str:
    """The script tags a page needs for the base map ``config`` (geo.basemap.page_config)."""
    sources = [url_for("static", filename="js/basemap.js")]
    if config["mode"] == "file" and config["file"]["format"] == "pbf":
        sources.insert(0, _vendor_url(VECTOR_GRID))
    return "".join(f'<script src="{source}"></script>' for source in sources)


def render_map(fmap: folium.Map, template: str, **context) -> str:
    """Render ``fmap`` into one of our templates as ``map_header``, ``map_html``, ``map_script``;
    folium's inline scripts get the response's CSP nonce (the template puts it on ``map_script``'s)."""
    localise(fmap)
    figure = fmap.get_root()
    figure.render()
    # After render: the map's own script is in figure.script by then, and the base map's call follows it.
    basemap = page_config()
    figure.header.add_child(Element(basemap_scripts(basemap)))
    figure.script.add_child(Element(f"GridAtlasBasemap.attach({fmap.get_name()}, {htmlsafe_json_dumps(basemap)});"))
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
    """The templates' helpers: ``vendor_url`` and ``basemap_scripts`` (for a page that builds its own map)."""
    app.jinja_env.globals.setdefault("vendor_url", _vendor_url)
    app.jinja_env.globals.setdefault("basemap_scripts", basemap_scripts)
