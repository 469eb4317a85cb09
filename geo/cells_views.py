"""The planner's map of grid cells (/map/cells): cells coloured by a figure, each cell's team,
gaps and history, the uncovered territory and the split transformer areas; planners draw and
edit cells with Leaflet-Geoman (static/js/cells_map.js), dispatchers only look."""
from __future__ import annotations

from flask import Blueprint, url_for
from folium.elements import JSCSSMixin
from folium.plugins import GeoMan

from geo.auth import DISPATCHER, PLANNER, allow, current_principal
from geo.cell_checks import BORDER_SNAP_M, OVERLAP_TOLERANCE_M2
from geo.maps import base_map, render_map
from geo.openapi import HTML, Answer, contract

__all__ = ["bp"]

bp = Blueprint("cells_views", __name__)


class _GeomanAssets(JSCSSMixin):
    """Leaflet-Geoman's script and styles (our vendored copy); the page's script sets it up."""

    default_js = GeoMan.default_js
    default_css = GeoMan.default_css


def _api_urls() -> dict[str, str]:
    """The API's URLs the page calls; ``__code__``, ``__n__`` and ``__area__`` are filled in by the script."""
    cell, number, area = "__code__", 999999, "__area__"
    return {
        "cells": url_for("cells_api.cell_layer"),
        "cell": url_for("cells_api.cell_detail", code=cell),
        "coverage": url_for("cells_api.coverage"),
        "versions": url_for("cells_api.cell_versions", code=cell),
        "version": url_for("cells_api.cell_version", code=cell, number=number).replace(str(number), "__n__"),
        "restore": url_for("cells_api.cell_restore", code=cell, number=number).replace(str(number), "__n__"),
        "validate": url_for("cells_api.validate"),
        "areaCell": url_for("cells_api.area_cell", area=area),
        "export": url_for("cells_api.export"),
        "import": url_for("cells_api.cell_import"),
    }


@bp.get("/map/cells")
@allow(PLANNER, DISPATCHER)
@contract(responses={200: Answer(HTML)})
def cell_map():
    """The grid cells map: planners edit (draw, vertices, cut, delete, restore), dispatchers read."""
    editable = current_principal().role == PLANNER
    # The script fits the view to the territory and the cells once they have loaded.
    fmap = base_map((20.0, 0.0), zoom_start=2, maxZoom=20, zoomSnap=0.5)
    if editable:
        _GeomanAssets().add_to(fmap)
    config = {"api": _api_urls(), "editable": editable,
              "overlapToleranceM2": OVERLAP_TOLERANCE_M2, "borderSnapM": BORDER_SNAP_M}
    return render_map(fmap, "cells_map.html", config=config, editable=editable)
