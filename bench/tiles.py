"""Time the vector tiles (/tiles/<layer>/{z}/{x}/{y}.mvt) of the demo city at zooms 10 to 18.

    .venv/bin/python bench/tiles.py                          # the 1,000,000-customer city
    .venv/bin/python bench/tiles.py 100000                   # another size
    .venv/bin/python bench/tiles.py --database-url URL       # a database already loaded

The city is loaded once into ``gridatlas_bench_tiles`` and kept (a later run at the same size
reuses it). Requests go to the Flask app in this process (its test client: the server's time,
without a network), a planner's token for the service points. Every tile over the city's
extent at zooms 10 to 12, a random sample (seed 1) at 13 to 18; each tile is asked once, as a
map's first view would, with the tile cache off (TILE_CACHE_MB=0: each answer is built by
PostGIS); then the far-out segments tiles once more from the cache, as later maps get them. Prints per layer and
zoom the tiles asked, p50 / p95 / max in ms against the target (p95 < 50 ms), the mean size,
and a 304 revalidation; then the old GeoJSON answer for the whole city (MV segments, cut at
the feature limit) next to the tiles that draw the same view.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time

from common import bench_database, bench_token, load_note  # noqa: E402  (puts the project on sys.path)
from app import create_app  # noqa: E402
from geo.spatial import BBox  # noqa: E402
from network_map import fitting_zoom, view  # noqa: E402
from topology.layers import network_extent  # noqa: E402

DATABASE = "gridatlas_bench_tiles"
ZOOMS = range(10, 19)
ALL_TILES_UP_TO = 12
TARGET_MS = 50.0
LAYERS = ("segments", "devices", "transformer_areas", "service_points")


def tile_range(box: BBox, z: int) -> tuple[range, range]:
    """The columns and rows of zoom ``z`` that cover ``box``."""
    n = 2 ** z

    def column(lon: float) -> int:
        return min(n - 1, int((lon + 180) / 360 * n))

    def row(lat: float) -> int:
        return min(n - 1, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    return range(column(box.west), column(box.east) + 1), range(row(box.north), row(box.south) + 1)


def sample(box: BBox, z: int, count: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Every tile of ``box`` at zoom ``z`` up to ALL_TILES_UP_TO, else ``count`` of them at random."""
    columns, rows = tile_range(box, z)
    if z <= ALL_TILES_UP_TO:
        return [(z, x, y) for x in columns for y in rows]
    return [(z, rng.choice(columns), rng.choice(rows)) for _ in range(count)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def timed_get(client, path: str, headers: dict) -> tuple[float, object]:
    started = time.perf_counter()
    answer = client.get(path, headers=headers)
    return (time.perf_counter() - started) * 1000, answer


def bench_layer(client, layer: str, tiles: dict[int, list], headers: dict) -> list[float]:
    """Print one line per zoom for ``layer``; returns every time measured."""
    every = []
    for z, wanted in tiles.items():
        times, sizes, etag = [], [], None
        for _, x, y in wanted:
            took, answer = timed_get(client, f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers)
            assert answer.status_code == 200, (layer, z, x, y, answer.status_code, answer.data[:200])
            times.append(took)
            sizes.append(len(answer.data))
            etag = answer.headers["ETag"]
        revalidate, answer = timed_get(client, f"/tiles/{layer}/{z}/{wanted[-1][1]}/{wanted[-1][2]}.mvt",
                                       {**headers, "If-None-Match": etag})
        assert answer.status_code == 304
        p95 = percentile(times, 0.95)
        every += times
        print(f"  {layer:<18} {z:>4} {len(wanted):>6} {statistics.median(times):>7.1f} {p95:>7.1f} {max(times):>7.1f}"
              f" {'yes' if p95 < TARGET_MS else 'NO':>6} {statistics.mean(sizes) / 1024:>8.1f} kB {revalidate:>6.1f}",
              flush=True)
    return every


def compare_with_geojson(client, box: BBox, limit: int) -> None:
    """The old city-wide answer (MV segments by bbox, cut at ``limit``) against its view's tiles."""
    zoom = fitting_zoom(box)
    padded = view(box, zoom)
    address = "/api/network/segments?level=mv&bbox=" + ",".join(f"{v:.6f}" for v in padded)
    client.get(address)
    times, answer = [], None
    for _ in range(7):
        took, answer = timed_get(client, address, {})
        times.append(took)
    body = answer.get_json()
    print(f"  GeoJSON /api/network/segments?level=mv, whole city at zoom {zoom:g}: median {statistics.median(times):.0f} ms,"
          f" {body['numberReturned']:,} features{' (truncated at ' + format(limit, ',') + ')' if body['truncated'] else ''},"
          f" {len(answer.data) / 1024:,.0f} kB")
    tile_zoom = round(zoom)
    columns, rows = tile_range(view(box, zoom), tile_zoom)
    tile_times, size = [], 0
    for x in columns:
        for y in rows:
            took, answer = timed_get(client, f"/tiles/segments/{tile_zoom}/{x}/{y}.mvt", {})
            tile_times.append(took)
            size += len(answer.data)
    print(f"  vector tiles of the same view (zoom {tile_zoom}, {len(tile_times)} tiles, every segment): "
          f"p95 {percentile(tile_times, 0.95):.0f} ms a tile, {sum(tile_times):.0f} ms all one after another "
          f"(a browser asks 6 at a time), {size / 1024:,.0f} kB")


def cached(url: str, tiles: dict[int, list]) -> None:
    """The far-out segments tiles a second time from the process's tile cache (as every map
    opening on the city after the first asks for them)."""
    app = create_app({"DATABASE_URL": url, "BASEMAP_URL": "none"})
    client = app.test_client()
    wanted = [tile for z in range(10, ALL_TILES_UP_TO + 1) for tile in tiles[z]]
    for z, x, y in wanted:
        client.get(f"/tiles/segments/{z}/{x}/{y}.mvt")
    times = [timed_get(client, f"/tiles/segments/{z}/{x}/{y}.mvt", {})[0] for z, x, y in wanted]
    print(f"  segments, zooms 10-{ALL_TILES_UP_TO} again from the tile cache ({len(times)} tiles): "
          f"p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 0.95):.1f} ms")
    app.extensions["engine"].dispose()


def bench(url: str, samples: int) -> None:
    """Time every layer's tiles over the city of the database at ``url``, each built (no cache)."""
    app = create_app({"DATABASE_URL": url, "BASEMAP_URL": "none", "TILE_CACHE_MB": 0})
    engine = app.extensions["engine"]
    client = app.test_client()
    planner = bench_token(engine, "planner")
    with engine.connect() as connection:
        box = network_extent(connection)
    started = time.perf_counter()
    client.get("/tiles/segments/10/0/0.mvt")  # the topology and the segments' overview, once per process and import
    print(f"  first tile (topology read and indexed, overview checked or built): {time.perf_counter() - started:.1f} s")
    rng = random.Random(1)
    tiles = {z: sample(box, z, samples, rng) for z in ZOOMS}
    print(f"  {load_note()}; /proc/loadavg: {open('/proc/loadavg').read().strip()}")
    print(f"  {'layer':<18} {'zoom':>4} {'tiles':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'<50ms':>6}"
          f" {'mean size':>11} {'304 ms':>6}")
    for layer in LAYERS:
        bench_layer(client, layer, tiles, planner if layer == "service_points" else {})
    compare_with_geojson(client, box, app.config["API_MAX_FEATURES"])
    engine.dispose()
    cached(url, tiles)
    print(f"  after: {load_note()}")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000, help="customers of the demo city")
    parser.add_argument("--database-url", help="time this database as it is instead of the demo city")
    parser.add_argument("--samples", type=int, default=80, help="random tiles per zoom from zoom 13 on")
    args = parser.parse_args()
    url = args.database_url or bench_database(DATABASE, args.customers, reuse=True)
    print(f"{args.customers:,} customers" if not args.database_url else url)
    bench(url, args.samples)


if __name__ == "__main__":
    os.environ.setdefault("BASEMAP_URL", "none")
    main()
