"""Time the network map's bbox layer endpoints over HTTP and in-process, as the map calls them.

    .venv/bin/python bench/network_map.py                        # demo cities of 20k and 1M customers
    .venv/bin/python bench/network_map.py 100000                 # other sizes
    .venv/bin/python bench/network_map.py --database-url URL     # a database already loaded

Loads each demo city into its own database ``gridatlas_bench_network_map`` (dropped and
recreated per size), serves the app from a threaded werkzeug server on a free port, and
requests what /map/network requests for four views of a 1400x850 px window centred on the
city (each bbox padded by 25 % as the page pads it): the whole city at the zoom that fits it,
a district at zoom 15 (MV only), a neighbourhood at zoom 16 (LV and customers too) and a
street at zoom 17. Prints median and 95th percentile over the runs, the features returned and
the response size; ``sql`` is ``network_layer`` alone. ``/map/network`` is timed after its
first request, so its extent and totals come from the per-version cache.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import threading
import time

import requests
from werkzeug.serving import make_server

from common import bench_database  # noqa: E402  (puts the project on sys.path)
from app import create_app  # noqa: E402
from geo.spatial import BBox  # noqa: E402
from topology.layers import Filters, network_extent, network_layer  # noqa: E402
from topology.models import SWITCHGEAR  # noqa: E402
from topology.views import DETAIL_ZOOM, OVERVIEW_ZOOM  # noqa: E402

DATABASE = "gridatlas_bench_network_map"
WINDOW = (1400, 850)
PADDING = 1.5  # the page asks for its view padded by 25 % on every side


def view(extent: BBox, zoom: float) -> BBox:
    """The padded bbox of the window centred on ``extent`` at ``zoom`` (Web Mercator)."""
    lon, lat = (extent.west + extent.east) / 2, (extent.south + extent.north) / 2
    degrees_per_pixel = 360 / (256 * 2 ** zoom)
    half_width = WINDOW[0] * PADDING / 2 * degrees_per_pixel
    half_height = WINDOW[1] * PADDING / 2 * degrees_per_pixel * math.cos(math.radians(lat))
    return BBox(lon - half_width, lat - half_height, lon + half_width, lat + half_height)


def fitting_zoom(extent: BBox) -> float:
    """The half-step zoom at which the window shows the whole extent, as the page's fitBounds picks."""
    lat = math.radians((extent.south + extent.north) / 2)
    zoom_x = math.log2(WINDOW[0] * 360 / (256 * (extent.east - extent.west)))
    zoom_y = math.log2(WINDOW[1] * 360 * math.cos(lat) / (256 * (extent.north - extent.south)))
    return math.floor(min(zoom_x, zoom_y) * 2) / 2


def map_requests(zoom: float) -> list[tuple[str, Filters]]:
    """The layers (and filters) the page requests at ``zoom`` (as static/js/network_map.js does)."""
    level = "mv" if zoom < DETAIL_ZOOM else None
    state = "open" if zoom < OVERVIEW_ZOOM else None
    layers = [("segments", Filters(level=level)), ("devices", Filters(kinds=SWITCHGEAR, level=level, state=state))]
    layers += [("transformers", Filters())] if zoom >= OVERVIEW_ZOOM else []
    return layers + [("substations", Filters())] + ([("service_points", Filters())] if zoom >= DETAIL_ZOOM else [])


def query_string(bbox: BBox, filters: Filters) -> str:
    """The request's parameters."""
    parts = ["bbox=" + ",".join(f"{value:.6f}" for value in bbox)]
    if filters.kinds:
        parts.append("kind=" + ",".join(filters.kinds))
    if filters.level:
        parts.append("level=" + filters.level)
    if filters.state:
        parts.append("state=" + filters.state)
    return "&".join(parts)


def timed(call, runs: int) -> tuple[float, float, object]:
    """Median and 95th percentile in ms of ``call()`` over ``runs`` runs after one warm-up, and its result."""
    result = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], result


def bench(url: str, runs: int) -> None:
    """Serve the app on ``url``'s database and time every view's requests."""
    app = create_app({"DATABASE_URL": url, "BASEMAP_URL": "none"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    engine = app.extensions["engine"]
    limit = app.config["API_MAX_FEATURES"]
    with engine.connect() as connection:
        extent = network_extent(connection)
    print(f"  load average {os.getloadavg()[0]:.1f} (2 cores, shared)")
    started = time.perf_counter()
    requests.get(f"{base}/map/network", timeout=60)
    first = (time.perf_counter() - started) * 1000
    page_median, page_p95, _ = timed(lambda: requests.get(f"{base}/map/network", timeout=60), runs)
    print(f"  /map/network page: first {first:.0f} ms (extent and totals computed), "
          f"then median {page_median:.0f} ms, p95 {page_p95:.0f} ms (cached per topology version)")
    city_zoom = fitting_zoom(extent)
    views = [(f"whole city, zoom {city_zoom:g}", city_zoom), ("district, zoom 15", 15),
             ("neighbourhood, zoom 16", 16), ("street, zoom 17", 17)]
    print(f"  {'view':<24} {'layer':<26} {'features':>9} {'size':>9} {'http median':>12} {'p95':>7} {'sql median':>11}")
    for name, zoom in views:
        bbox = view(extent, zoom)
        total, size = 0.0, 0
        for layer, filters in map_requests(zoom):
            label = layer + "".join(f" ({value})" for value in (filters.level, filters.state) if value)
            address = f"{base}/api/network/{layer}?{query_string(bbox, filters)}"
            http_median, http_p95, response = timed(lambda: requests.get(address, timeout=60), runs)
            body = response.json()

            def in_process():
                with engine.connect() as connection:
                    return network_layer(connection, layer, bbox, limit, filters)

            sql_median, _, _ = timed(in_process, runs)
            total += http_median
            size += len(response.content)
            returned = f"{body['numberReturned']:,}" + ("*" if body["truncated"] else "")
            print(f"  {name:<24} {label:<26} {returned:>9} {len(response.content) / 1024:>7.0f} kB "
                  f"{http_median:>9.0f} ms {http_p95:>4.0f} ms {sql_median:>8.0f} ms")
        print(f"  {name:<24} {'all, one after another':<26} {'':>9} {size / 1024:>7.0f} kB {total:>9.0f} ms")
    print("  * truncated at the limit of", f"{limit:,}")
    server.shutdown()
    engine.dispose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000, 1_000_000], help="customers per demo city")
    parser.add_argument("--database-url", help="time this database as it is instead of loading demo cities")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per request")
    args = parser.parse_args()
    if args.database_url:
        bench(args.database_url, args.runs)
        return
    for customers in args.sizes:
        print(f"{customers:,} customers")
        bench(bench_database(DATABASE, customers), args.runs)


if __name__ == "__main__":
    main()
