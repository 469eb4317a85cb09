"""The outlet finder map: locate me or search an address, the nearest outlets, book a visit."""
from __future__ import annotations

from flask import Blueprint, url_for

from geo.db import get_session
from geo.i18n import translate
from geo.maps import base_map, render_map
from geo.auth import PUBLIC, allow
from geo.openapi import HTML, Answer, contract
from outlets.booking import BOOKING_HORIZON_DAYS
from outlets.models import SERVICES
from outlets.store import outlets_extent

bp = Blueprint("outlets_views", __name__)


@bp.get("/map/outlets")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)})
def outlet_map():
    """The outlet finder; the page's script does the searching and booking through the API."""
    extent = outlets_extent(get_session().connection())
    centre = ((extent[1] + extent[3]) / 2, (extent[0] + extent[2]) / 2) if extent else (20.0, 0.0)
    # The zoom buttons go to the right (by the script): the finder's panel covers the left.
    fmap = base_map(centre, zoom_start=13 if extent else 2, zoom_control=False)
    if extent:
        fmap.fit_bounds([[extent[1], extent[0]], [extent[3], extent[2]]], max_zoom=15)
    services = {code: translate(label) for code, label in SERVICES.items()}
    config = {
        "nearest": url_for("outlets_api.nearest"),
        "addresses": url_for("outlets_api.address_suggestions"),
        "outlet": url_for("outlets_api.outlet_detail", code="__code__"),
        "slots": url_for("outlets_api.slots", code="__code__"),
        "bookings": url_for("outlets_api.create_booking"),
        "booking": url_for("outlets_api.booking_detail", code="__code__"),
        "services": services,
        "horizonDays": BOOKING_HORIZON_DAYS,
        "centre": [centre[1], centre[0]],
        "hasOutlets": extent is not None,
    }
    return render_map(fmap, "outlets_map.html", config=config, services=services)
