"""Map pages of the network."""
from __future__ import annotations

from flask import Blueprint, current_app, url_for
from folium.elements import JSCSSMixin
from folium.plugins import MarkerCluster

from geo.db import get_session
from geo.maps import base_map, render_map
from geo.auth import NETWORK_READERS, PUBLIC, allow, current_principal
from geo.openapi import HTML, Answer, contract
from geo.tiles import tile_url_template
from topology.trace_api import SWITCHING_ROLES
from topology.layers import network_overview

bp = Blueprint("topology_views", __name__)

# Below DETAIL_ZOOM a city view would hold tens of thousands of customers and LV segments: the
# map asks for no customers and only the MV network. Below OVERVIEW_ZOOM it leaves out fuses
# and transformers too (a million-customer city has 90,000 fuses and 36,000 transformers).
DETAIL_ZOOM = 16
OVERVIEW_ZOOM = 14
# Customers from DETAIL_ZOOM to this one come as vector tiles (dots, no clusters or popups):
# at zoom 16 a view of the 1M city asks for more than the GeoJSON limit.
CUSTOMER_TILE_ZOOM = 17


class _ClusterAssets(JSCSSMixin):
    """Leaflet.markercluster's script and styles; the page's own script builds the cluster group."""

    default_js = MarkerCluster.default_js
    default_css = MarkerCluster.default_css


@bp.get("/map/network")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)})
def network_map():
    """The network map: feeders, switchgear and their states, transformers and customers by bbox."""
    principal = current_principal()
    # The public sees the network itself; customers, traces and switching need a role that may.
    may_trace = principal is not None and principal.role in NETWORK_READERS
    connection = get_session().connection()
    extent, summary = network_overview(connection)
    centre = ((extent.south + extent.north) / 2, (extent.west + extent.east) / 2) if extent else (20.0, 0.0)
    # Leaflet needs a maxZoom for clustering even when no base layer provides one; half zoom
    # steps let the network's extent fill the view.
    # The page's script fits the view to config["extent"] before its first load: folium's
    # fit_bounds would animate from this view after that load, and load everything twice.
    fmap = base_map(centre, zoom_start=13 if extent else 2, maxZoom=19, zoomSnap=0.5)
    _ClusterAssets().add_to(fmap)
    config = {
        "layerUrl": url_for("topology_api.layer_features", layer="__layer__"),
        "limit": current_app.config["API_MAX_FEATURES"],
        "detailZoom": DETAIL_ZOOM,
        "overviewZoom": OVERVIEW_ZOOM,
        # Below these the segments and the customers come as vector tiles (every one: GeoJSON
        # would be cut at "limit"; a zoom-16 view of the 1M city holds over 20,000 customers).
        "tileZoom": OVERVIEW_ZOOM,
        "customerTileZoom": CUSTOMER_TILE_ZOOM,
        "tiles": {"segments": tile_url_template("segments"),
                  **({"service_points": tile_url_template("service_points")} if may_trace else {})},
        "extent": list(extent) if extent else None,
        "customers": may_trace,
    }
    return render_map(fmap, "network_map.html", summary=summary, config=config, may_trace=may_trace,
                      may_switch=principal is not None and principal.role in SWITCHING_ROLES)
