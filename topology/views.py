"""Map pages of the network."""
from flask import Blueprint

bp = Blueprint("topology_views", __name__)


@bp.get("/map/network")
def network_map():
    """The network map."""
    return "network map"
