"""JSON API of the network."""
from flask import Blueprint

bp = Blueprint("topology_api", __name__, url_prefix="/api")
