"""The public outage pages: "is my power out?" (``/status``) and the public outage map
(``/map/outages``). Both are public; their scripts read only the public API (outages.public_api)
and file calls with ``POST /api/calls``."""
from __future__ import annotations

from folium.elements import JSCSSMixin
from flask import Blueprint, current_app, render_template, url_for
from folium.plugins import MarkerCluster

from geo.auth import PUBLIC, allow
from geo.db import get_session
from geo.maps import base_map, render_map
from geo.openapi import HTML, Answer, contract
from outages.public import public_settings
from topology.layers import network_overview

bp = Blueprint("outages_public_views", __name__)

# How often the public map asks whether the feed changed: a change shows within about this long
# (plus one load of the layers), well inside the 10 s promised.
VERSION_POLL_MS = 3000


class _ClusterAssets(JSCSSMixin):
    """Leaflet.markercluster's script and styles for the page's own cluster group of grid cells."""

    default_js = MarkerCluster.default_js
    default_css = MarkerCluster.default_css


def _api() -> dict:
    """The public API's addresses the pages' scripts use."""
    return {
        "status": url_for("outages_public.service_status"),
        "outages": url_for("outages_public.current_outages"),
        "cells": url_for("outages_public.cell_totals"),
        "version": url_for("outages_public.feed_version"),
        "outage": url_for("outages_public.outage_feature", code="__code__"),
        "calls": url_for("outages_api.file_call"),
        "call": url_for("outages_api.call_detail", reference="__reference__"),
        "subscribe": url_for("outages_api.subscription_create"),
        "confirm": url_for("outages_api.subscription_confirm", reference="__reference__"),
    }


@bp.get("/status")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)})
def status_page():
    """Is my power out? By account number or address, with a report form when we do not know yet."""
    return render_template("status.html", config={"api": _api(), "map": url_for("outages_public_views.outage_map")})


@bp.get("/map/outages")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)})
def outage_map():
    """The public outage map: outages as coarse areas, totals per grid cell, search and the report form."""
    extent, _summary = network_overview(get_session().connection())
    centre = ((extent.south + extent.north) / 2, (extent.west + extent.east) / 2) if extent else (20.0, 0.0)
    fmap = base_map(centre, zoom_start=13 if extent else 2, maxZoom=18, zoom_control=False)
    _ClusterAssets().add_to(fmap)
    if extent:
        fmap.fit_bounds([[extent.south, extent.west], [extent.north, extent.east]], max_zoom=15)
    config = {"api": _api(), "pollMs": VERSION_POLL_MS}
    return render_map(fmap, "outages_map.html", config=config, rule=public_settings(current_app.config))
