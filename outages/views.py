"""Pages of outages: the dispatcher's live map (``/map/dispatch``), the crew's phone page (``/crew``)
and the page of an outage message's unsubscribe link (``/unsubscribe/<token>``)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from geo.auth import CREW, DISPATCHER, PUBLIC, allow, current_principal
from geo.db import get_session
from geo.basemap import page_config
from geo.maps import base_map, render_map
from geo.openapi import HTML, Answer, contract
from geo.db import read
from outages import subscriptions
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


@bp.get("/unsubscribe/<token>")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)}, errors=(404,))
def unsubscribe_page(token: str):
    """What the link unsubscribes (masked), with the button that does it: opening it changes nothing."""
    found = read(subscriptions.by_token, token)
    return render_template("unsubscribe.html", subscription=found, token=token), 200, {"Cache-Control": "no-store"}


@bp.post("/unsubscribe/<token>")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)}, errors=(404,))
def unsubscribe(token: str):
    """Unsubscribe (the page's button); again: nothing changes."""
    done = subscriptions.unsubscribe(get_session(), token)
    return render_template("unsubscribe.html", subscription=done, token=token), 200, {"Cache-Control": "no-store"}
