"""Map pages of outages: the dispatcher's live map (``/map/dispatch``) and the crew's phone page (``/crew``)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from geo.auth import CREW, DISPATCHER, allow, current_principal
from geo.db import get_session
from geo.basemap import page_config
from geo.maps import base_map, render_map
from geo.openapi import HTML, Answer, contract
from outages.crews import crew_of_account
from topology.layers import network_overview
from topology.trace_api import SWITCHING_ROLES

bp = Blueprint("outages_views", __name__)

# How often an open map asks what changed (the live feed); a change shows within about this long.
LIVE_POLL_MS = 1000


@bp.get("/map/dispatch")
@allow(DISPATCHER)
@contract(responses={200: Answer(HTML)})
def dispatch_map():
    """The dispatcher's live map: outages, calls, crews and switch states, with the outage board."""
    principal = current_principal()
    connection = get_session().connection()
    extent, summary = network_overview(connection)
    centre = ((extent.south + extent.north) / 2, (extent.west + extent.east) / 2) if extent else (20.0, 0.0)
    fmap = base_map(centre, zoom_start=13 if extent else 2, maxZoom=19, zoomSnap=0.5)
    config = {
        "api": url_for("outages_api.outage_list").rsplit("/", 1)[0],
        "layerUrl": url_for("topology_api.layer_features", layer="__layer__"),
        "limit": current_app.config["API_MAX_FEATURES"],
        "extent": list(extent) if extent else None,
        "pollMs": LIVE_POLL_MS,
        "maySwitch": principal.role in SWITCHING_ROLES,
        "account": principal.name,
    }

    return render_map(fmap, "dispatch_map.html", summary=summary, config=config)


@bp.get("/crew")
@allow(CREW)
@contract(responses={200: Answer(HTML)})
def crew_page():
    """The crew's phone page: its assignment and the way to it, status buttons, notes and restoration."""
    crew = crew_of_account(get_session().connection(), current_principal().account_id)
    config = {"api": url_for("outages_api.my_crew").rsplit("/", 2)[0], "crew": crew.code if crew else None,
              "pollMs": LIVE_POLL_MS * 5, "basemap": page_config()}
    return render_template("crew.html", crew=crew, config=config)
