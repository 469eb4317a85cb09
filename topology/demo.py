"""The demo city: a synthetic, realistic distribution network at real coordinates (Karlsruhe).

The streets are synthetic, the area is real: a rectangular grid of blocks centred on
Karlsruhe's Marktplatz, sized to the number of customers (about 28 customers a block).

Layout (``City`` describes it; other packages' demo extensions may reuse it). The grid is
split into districts of 2P block rows by 2L block columns, one substation each::

    x----T----T----T----T----+----T----T----T----T----x   row pair 1: a west and an east feeder
                             |
                             S                            S: substation at the central crossing;
                             |                               exit cables run along the central
    x----T----T----T----T----+----T----T----T----T----x      street to each trunk (here P=2, L=4)

    ----  feeder trunk on the street between the two block rows of a pair
    T     fused lateral to the stations of the blocks north and south of it
    x     trunk end: a normally-open tie to the next district's feeder (or next pair's)

- Every block is one transformer area: one MV/LV station on the block's trunk-side edge and
  an LV cable round the block in both directions (an LV fuse at each outlet), with 5 to 60
  customers in houses along the block's edges.
- Each feeder starts with a breaker at a substation busbar, runs out along the district's
  central street to its trunk street, and carries a recloser and sectionalising switches on
  its trunk and a fused lateral per block column. Trunks end at the district boundary, where a
  normally-open tie meets the neighbouring district's feeder (or, on the city's west and east
  edges, the feeder of the next row pair). So the normal state is radial and fully energised.
- Addresses: streets are named spans of the grid lines (unique names within a town), houses
  numbered from the end nearest the centre (odd on the left), postcodes and towns of the real
  places nearest each street. Phone numbers come from the ranges the Bundesnetzagentur keeps
  unassigned for fiction ("drama numbers"), so that no notification can reach a real person.

Everything is built with numpy over whole arrays (no per-element Python loop) and is
deterministic for a given size and seed.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from tqdm import tqdm

from topology.loader import LAYERS, NetworkFrames

__all__ = ["City", "CITY", "PLACES", "city_for", "generate_city", "account_numbers", "luhn_valid",
           "MIN_CUSTOMERS", "MAX_CUSTOMERS"]

MIN_CUSTOMERS = 100
MAX_CUSTOMERS = 5_000_000
CENTRE = (8.4037, 49.0094)  # Karlsruhe, Marktplatz

BLOCK_WIDTH_M = 150.0
BLOCK_HEIGHT_M = 100.0
CUSTOMERS_PER_BLOCK = 28
STREET_HALF_WIDTH_M = 8.0  # street centre line to the property line
CABLE_INSET_M = 10.0  # street centre line to the LV cable (and the station on it)
HOUSE_SETBACK_M = 8.0  # LV cable to the house
STREET_BLOCKS_EW, STREET_BLOCKS_NS = 5, 7  # a named street spans this many blocks
OVERHEAD_BEYOND_M = 7000.0  # districts farther out are fed by overhead lines on poles
MV_KV, LV_KV = 20.0, 0.4
TRANSFORMER_KVA = np.array([100.0, 160.0, 250.0, 400.0, 630.0])
KVA_PER_CUSTOMER = 5.0
CABLE_TRUNK = "NA2XS2Y 3x1x240 RM/25 12/20kV"
CABLE_LATERAL = "NA2XS2Y 3x1x95 RM/16 12/20kV"
OVERHEAD_TRUNK = "Al/St 95/15"
OVERHEAD_LATERAL = "Al/St 50/8"
CABLE_LV = "NAYY-J 4x150 SE 0.6/1kV"
# Continuous current ratings (A) of the conductors above, laid in the ground or strung in air:
# the manufacturers' tables for these types, rounded.
AMPACITY_A = {CABLE_TRUNK: 420.0, CABLE_LATERAL: 245.0, OVERHEAD_TRUNK: 330.0, OVERHEAD_LATERAL: 170.0,
              CABLE_LV: 275.0}
# What a feeder may carry at its head: a cable feeder's breaker and busbar share, less for the
# overhead lines' longer, weaker trunks.
FEEDER_RATING_KVA = {False: 8000.0, True: 5000.0}
DEMAND_KW = (1.0, 6.0)  # a customer's peak demand, drawn uniformly, rounded to 0.1 kW


# -- the city -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class City:
    """The demo city's street grid: blocks in substation districts around a real centre.

    Lengths are metres in a transverse Mercator frame centred on ``centre`` (x east, y north,
    origin at the centre). Blocks are numbered by global row (from the south) and column (from
    the west); grid line ``r`` is the east-west street along the south edge of block row ``r``,
    grid line ``c`` the north-south street along the west edge of block column ``c``.

    Attributes
    ----------
    name : str
        The city's name, shown by the demo.
    customers : int
        How many customers the network has.
    district_rows, district_columns : int
        Substation districts north-south and east-west.
    pairs : int
        Row pairs per district; each pair has one feeder west and one east of the substation.
    half_length : int
        Block columns on each side of a district's central street (blocks per feeder trunk).
    """

    name: str
    customers: int
    district_rows: int
    district_columns: int
    pairs: int
    half_length: int
    block_width_m: float = BLOCK_WIDTH_M
    block_height_m: float = BLOCK_HEIGHT_M
    centre: tuple[float, float] = CENTRE

    @property
    def rows(self) -> int:
        """Block rows."""
        return self.district_rows * 2 * self.pairs

    @property
    def columns(self) -> int:
        """Block columns."""
        return self.district_columns * 2 * self.half_length

    @property
    def blocks(self) -> int:
        """Blocks, which is also transformers and transformer areas."""
        return self.rows * self.columns

    @property
    def substations(self) -> int:
        """Substations (one per district)."""
        return self.district_rows * self.district_columns

    @property
    def feeders(self) -> int:
        """MV feeders."""
        return self.substations * 2 * self.pairs

    @property
    def origin(self) -> tuple[float, float]:
        """The south-west corner of the grid in metres."""
        return (-self.columns * self.block_width_m / 2, -self.rows * self.block_height_m / 2)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees: the extent of the generated network."""
        x0, y0 = self.origin
        x = np.array([x0, -x0, -x0, x0])
        y = np.array([y0, y0, -y0, -y0])
        lon, lat = self.to_lonlat(x, y)
        return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def to_lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Metres in the city's frame to longitude and latitude (EPSG:4326)."""
        return _transformer(self.centre, inverse=False).transform(np.asarray(x, float), np.asarray(y, float))

    def to_metres(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude to metres in the city's frame."""
        return _transformer(self.centre, inverse=True).transform(np.asarray(lon, float), np.asarray(lat, float))

    def block_bounds(self, row, column) -> tuple[np.ndarray, ...]:
        """(x0, y0, x1, y1) in metres of the blocks at ``row``, ``column`` (street centre lines)."""
        x0, y0 = self.origin
        left = x0 + np.asarray(column) * self.block_width_m
        bottom = y0 + np.asarray(row) * self.block_height_m
        return left, bottom, left + self.block_width_m, bottom + self.block_height_m

    def district_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in metres of each district's central crossing, district ``i * columns + j``."""
        x0, y0 = self.origin
        i, j = np.divmod(np.arange(self.substations), self.district_columns)
        x = x0 + (j * 2 + 1) * self.half_length * self.block_width_m
        y = y0 + (i * 2 + 1) * self.pairs * self.block_height_m
        return x, y

    def streets(self, seed: int = 1) -> pd.DataFrame:
        """The named streets: name, postcode, town, orientation (ew/ns), grid line, geometry."""
        streets = _street_grid(self)
        _name_streets(self, streets, seed)
        x, y = np.stack([streets["x0"], streets["x1"]], 1), np.stack([streets["y0"], streets["y1"]], 1)
        lon, lat = self.to_lonlat(x, y)
        return pd.DataFrame({
            "name": streets["name"], "postcode": streets["postcode"], "town": streets["town"],
            "orientation": np.where(streets["ew"], "ew", "ns"), "line": streets["line"],
            "geometry": shapely.linestrings(np.stack([lon, lat], -1)),
        })


@functools.lru_cache(maxsize=4)
def _transformer(centre: tuple[float, float], inverse: bool) -> Transformer:
    local = f"+proj=tmerc +lat_0={centre[1]} +lon_0={centre[0]} +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m"
    if inverse:
        return Transformer.from_crs("EPSG:4326", local, always_xy=True)
    return Transformer.from_crs(local, "EPSG:4326", always_xy=True)


def city_for(customers: int) -> City:
    """The city layout for ``customers`` customers (about 28 a block, 320 blocks a district).

    >>> city_for(20_000).substations, city_for(20_000).blocks
    (2, 640)
    """
    if not MIN_CUSTOMERS <= customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between {MIN_CUSTOMERS} and {MAX_CUSTOMERS}, not {customers}")
    blocks = customers / CUSTOMERS_PER_BLOCK
    pairs, half_length = 8, 10
    districts = round(blocks / (4 * pairs * half_length))
    if districts <= 1:
        scale = math.sqrt(blocks / (4 * pairs * half_length))
        pairs, half_length = max(2, round(pairs * scale)), max(2, round(half_length * scale))
        rows = columns = 1
    else:
        aspect = (2 * pairs * BLOCK_HEIGHT_M) / (2 * half_length * BLOCK_WIDTH_M)
        columns = max(1, round(math.sqrt(districts * aspect)))
        rows = max(1, round(districts / columns))
    return City("Karlsruhe", customers, rows, columns, pairs, half_length)


CITY = city_for(20_000)
"""The default demo city (``make run``); ``city_for(n)`` gives the layout for other sizes."""


# -- places, names, numbers ---------------------------------------------------------------------
# Real places around Karlsruhe (approximate centres): quarter, postcode, town, lon, lat.
PLACES = (
    ("Innenstadt-West", "76133", "Karlsruhe", 8.3960, 49.0100),
    ("Innenstadt-Ost", "76131", "Karlsruhe", 8.4130, 49.0105),
    ("Südstadt", "76137", "Karlsruhe", 8.4090, 49.0020),
    ("Südweststadt", "76135", "Karlsruhe", 8.3880, 49.0030),
    ("Weststadt", "76185", "Karlsruhe", 8.3800, 49.0120),
    ("Nordweststadt", "76187", "Karlsruhe", 8.3700, 49.0310),
    ("Oststadt", "76131", "Karlsruhe", 8.4250, 49.0130),
    ("Mühlburg", "76185", "Karlsruhe", 8.3640, 49.0110),
    ("Daxlanden", "76189", "Karlsruhe", 8.3350, 49.0000),
    ("Knielingen", "76187", "Karlsruhe", 8.3450, 49.0270),
    ("Grünwinkel", "76185", "Karlsruhe", 8.3600, 48.9990),
    ("Oberreut", "76189", "Karlsruhe", 8.3600, 48.9830),
    ("Beiertheim-Bulach", "76135", "Karlsruhe", 8.3800, 48.9920),
    ("Weiherfeld-Dammerstock", "76199", "Karlsruhe", 8.3990, 48.9850),
    ("Rüppurr", "76199", "Karlsruhe", 8.4050, 48.9730),
    ("Durlach", "76227", "Karlsruhe", 8.4730, 48.9990),
    ("Grötzingen", "76229", "Karlsruhe", 8.4950, 49.0130),
    ("Hagsfeld", "76139", "Karlsruhe", 8.4470, 49.0230),
    ("Rintheim", "76131", "Karlsruhe", 8.4350, 49.0180),
    ("Waldstadt", "76139", "Karlsruhe", 8.4500, 49.0370),
    ("Neureut", "76149", "Karlsruhe", 8.3830, 49.0470),
    ("Wolfartsweier", "76228", "Karlsruhe", 8.4530, 48.9770),
    ("Hohenwettersbach", "76228", "Karlsruhe", 8.4780, 48.9690),
    ("Stupferich", "76228", "Karlsruhe", 8.4900, 48.9550),
    ("Grünwettersbach", "76228", "Karlsruhe", 8.4720, 48.9480),
    ("Ettlingen", "76275", "Ettlingen", 8.4080, 48.9410),
    ("Rheinstetten", "76287", "Rheinstetten", 8.3050, 48.9700),
    ("Stutensee", "76297", "Stutensee", 8.4860, 49.0660),
    ("Eggenstein-Leopoldshafen", "76344", "Eggenstein-Leopoldshafen", 8.3920, 49.0830),
    ("Pfinztal", "76327", "Pfinztal", 8.5350, 49.0040),
    ("Waldbronn", "76337", "Waldbronn", 8.4800, 48.9230),
    ("Karlsbad", "76307", "Karlsbad", 8.5000, 48.9100),
    ("Weingarten", "76356", "Weingarten (Baden)", 8.5300, 49.0520),
    ("Linkenheim-Hochstetten", "76351", "Linkenheim-Hochstetten", 8.4100, 49.1280),
    ("Durmersheim", "76448", "Durmersheim", 8.2700, 48.9330),
    ("Malsch", "76316", "Malsch", 8.3300, 48.8850),
    ("Bruchsal", "76646", "Bruchsal", 8.5990, 49.1240),
    ("Wörth", "76744", "Wörth am Rhein", 8.2650, 49.0500),
    ("Hagenbach", "76767", "Hagenbach", 8.2500, 49.0180),
    ("Graben-Neudorf", "76676", "Graben-Neudorf", 8.4880, 49.1650),
    ("Remchingen", "75196", "Remchingen", 8.5700, 48.9530),
    ("Walzbachtal", "75045", "Walzbachtal", 8.6000, 49.0300),
    ("Jockgrim", "76751", "Jockgrim", 8.2750, 49.0930),
    ("Bietigheim", "76467", "Bietigheim", 8.2500, 48.9100),
    ("Marxzell", "76359", "Marxzell", 8.4470, 48.8630),
    ("Rastatt", "76437", "Rastatt", 8.2050, 48.8580),
)

_TREES_AND_THINGS = (
    "Linden Ahorn Birken Eichen Buchen Kastanien Ulmen Erlen Eschen Tannen Fichten Kiefern Pappel "
    "Weiden Akazien Holunder Flieder Rosen Tulpen Nelken Lilien Veilchen Narzissen Dahlien Astern "
    "Lavendel Jasmin Garten Wiesen Feld Wald Berg Mühl Schul Kirch Bahnhof Post Markt Rathaus Brunnen "
    "Sonnen Stern Mond Quellen Hirsch Adler Falken Lerchen Meisen Finken Amsel Schwalben Tauben "
    "Kranich Reiher Storchen Fasanen Goethe Schiller Lessing Herder Kant Hebel Scheffel Mozart "
    "Beethoven Haydn Schubert Brahms Händel Kepler Humboldt Uhland Mörike Hölderlin Eichendorff Heine "
    "Fontane Storm Rilke Kleist Wieland Gutenberg Röntgen Diesel Drais Bunsen Hertz Haber Planck "
    "Einstein Leibniz Luther Melanchthon Zähringer Kaiser Karl Sophien Amalien Luisen Stephanien "
    "Hilda Friedrich Wilhelm Ludwig Leopold Marien Augusta Viktoria Rhein Alb Pfinz Murg Neckar Main "
    "Donau Kinzig Rench Enz Schwarzwald Hardt Kraichgau Odenwald Pfalz Vogesen Elsass Feldberg "
    "Belchen Hornisgrinde Merkur Turmberg Sand Kies Stein Lehm Acker Weinberg Reben Hopfen Obst Apfel "
    "Kirschen Nuss Hasel Wacholder Efeu Moos Farn Heide Hecken Brücken Damm Deich Hafen Schiff Zoll "
    "Wasser Insel Au Ried Bruch Grund Hof Scheunen Kelter Schmiede Bäcker Gerber Weber Färber"
).split()
_TOWN_ADJECTIVES = (
    "Durlacher Ettlinger Rastatter Pforzheimer Bruchsaler Mannheimer Heidelberger Stuttgarter "
    "Freiburger Badener Offenburger Brettener Daxlander Knielinger Neureuter Hagsfelder Rintheimer "
    "Grötzinger Rüppurrer Weingartener Blankenlocher Linkenheimer Speyerer Landauer Wörther Kandeler "
    "Straßburger Basler"
).split()
_PEOPLE = (
    "Carl-Benz Bertha-Benz Karl-Drais Heinrich-Hertz Fritz-Haber Max-Planck Albert-Schweitzer "
    "Robert-Koch Sophie-Scholl Konrad-Adenauer Theodor-Heuss Friedrich-Ebert Gustav-Heinemann "
    "Willy-Brandt Anne-Frank Hans-Thoma Käthe-Kollwitz Marie-Curie Lise-Meitner Edith-Stein "
    "Geschwister-Scholl Ludwig-Erhard Otto-Hahn Rudolf-Diesel Robert-Bosch Gottlieb-Daimler"
).split()
_SUFFIXES = ("Straße", "Weg", "Allee", "Gasse", "Ring", "Pfad")
_MODIFIERS = ("", "Alte ", "Neue ", "Obere ", "Untere ", "Hintere ", "Vordere ", "Kleine ", "Große ")
STREET_NAMES = np.array(
    [stem + suffix.lower() for stem in _TREES_AND_THINGS for suffix in _SUFFIXES]
    + [f"{stem} {suffix}" for stem in _TOWN_ADJECTIVES for suffix in _SUFFIXES]
    + [f"{stem}-{suffix}" for stem in _PEOPLE for suffix in _SUFFIXES],
    dtype=object,
)
"""Every base street name; a town's streets take distinct names (then "Alte ...", "Neue ...")."""

FIRST_NAMES = np.array((
    "Anna Maria Sophie Emma Mia Hannah Lena Laura Julia Lea Sarah Katharina Sabine Petra Andrea "
    "Claudia Susanne Monika Ursula Renate Ingrid Gisela Helga Karin Birgit Heike Nicole Stefanie "
    "Melanie Christina Elif Ayşe Zeynep Agnieszka Giulia Olga Thomas Michael Andreas Stefan Peter "
    "Klaus Jürgen Wolfgang Hans Werner Günter Dieter Uwe Frank Markus Matthias Christian Daniel "
    "Tobias Jan Lukas Felix Jonas Leon Paul Maximilian Alexander Sebastian Florian Mehmet Mustafa "
    "Ali Giuseppe Marco Piotr Tomasz Dimitrios Ivan"
).split(), dtype=object)
SURNAMES = np.array((
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer "
    "Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange "
    "Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter "
    "Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich "
    "Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon "
    "Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel "
    "Heinrich Brandt Haas Schreiber Graf Dietrich Ziegler Kuhn Pohl Engel Horn Busch Bergmann Voigt "
    "Sauer Arnold Pfeiffer Yılmaz Kaya Demir Şahin Çelik Öztürk Rossi Russo Esposito Nowak Kowalski "
    "Wiśniewski Popescu Papadopoulos Ivanov Novak"
).split(), dtype=object)
BUSINESSES = (("Bäckerei ", ""), ("", " GmbH"), ("Praxis Dr. ", ""), ("Metzgerei ", ""),
              ("", " Elektrotechnik GmbH"), ("Autohaus ", ""), ("Friseursalon ", ""),
              ("Steuerkanzlei ", ""), ("", " & Söhne KG"))
BUSINESS_SHARE = 0.06
# Numbers the Bundesnetzagentur keeps unassigned for fiction (Amtsblatt 7/2021, Mitteilung 148):
# (0)30 23125 000-999, (0)69 90009 ..., (0)40 66969 ..., (0)221 4710 ..., (0)89 99998 ...
DRAMA_NUMBER_PREFIXES = np.array(["+49 30 23125", "+49 69 90009", "+49 40 66969", "+49 221 4710", "+49 89 99998"],
                                 dtype=object)
PHONE_SHARE = 0.85

_DIGITS = {width: np.array([f"{i:0{width}d}" for i in range(10 ** width)], dtype=object) for width in (1, 2, 3)}
_NUMBERS = np.array([str(i) for i in range(1000)], dtype=object)


def _numbered(prefix, numbers, width: int) -> np.ndarray:
    """``prefix`` followed by ``numbers`` zero-padded to ``width`` digits (object array)."""
    rest = np.asarray(numbers, dtype=np.int64)
    out = None
    while width > 0:
        chunk = min(width, 3)
        part = _DIGITS[chunk][rest % 10 ** chunk]
        out = part if out is None else part + out
        rest, width = rest // 10 ** chunk, width - chunk
    return np.asarray(prefix, dtype=object) + out


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent random stream per purpose, so that changing one stage leaves the others."""
    return np.random.default_rng([seed, stream])


# -- streets ---------------------------------------------------------------------------------------
def _street_grid(city: City) -> dict[str, np.ndarray]:
    """The non-empty spans of the grid lines, east-west first; ``raw`` maps span ids to rows."""
    parts = []
    for ew, lines, cells, span, step in (
        (True, city.rows + 1, city.columns, STREET_BLOCKS_EW, city.block_width_m),
        (False, city.columns + 1, city.rows, STREET_BLOCKS_NS, city.block_height_m),
    ):
        spans = _span_count(cells, span)
        line, index = np.divmod(np.arange(lines * spans), spans)
        first = np.maximum(index * span - _span_shift(line, span), 0)
        last = np.minimum((index + 1) * span - _span_shift(line, span), cells) - 1
        parts.append(dict(ew=np.full(line.size, ew), line=line, first=first, last=last, ok=first <= last))
    grid = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    x0, y0 = city.origin
    along0 = np.where(grid["ew"], x0, y0) + grid["first"] * np.where(grid["ew"], city.block_width_m, city.block_height_m)
    along1 = np.where(grid["ew"], x0, y0) + (grid["last"] + 1) * np.where(grid["ew"], city.block_width_m, city.block_height_m)
    across = np.where(grid["ew"], y0 + grid["line"] * city.block_height_m, x0 + grid["line"] * city.block_width_m)
    raw = np.full(grid["ok"].size, -1)
    raw[grid["ok"]] = np.arange(int(grid["ok"].sum()))
    streets = {key: value[grid["ok"]] for key, value in grid.items() if key != "ok"}
    ew = streets["ew"]
    streets["x0"] = np.where(ew, along0[grid["ok"]], across[grid["ok"]])
    streets["x1"] = np.where(ew, along1[grid["ok"]], across[grid["ok"]])
    streets["y0"] = np.where(ew, across[grid["ok"]], along0[grid["ok"]])
    streets["y1"] = np.where(ew, across[grid["ok"]], along1[grid["ok"]])
    # House numbers start at the end nearest the centre.
    middle = np.where(ew, streets["x0"] + streets["x1"], streets["y0"] + streets["y1"])
    streets["outward"] = np.where(middle >= 0, 1, -1)
    streets["raw"] = raw
    return streets


def _span_count(cells: int, span: int) -> int:
    return cells // span + 2


def _span_shift(line, span: int):
    """Offsets the breaks between named streets from line to line, as in a real town."""
    return (np.asarray(line) * 3) % span


def _street_of(city: City, ew, line, cell) -> np.ndarray:
    """Raw span ids of the street on grid ``line`` at block ``cell`` (column for ew, row for ns)."""
    ew_spans = _span_count(city.columns, STREET_BLOCKS_EW)
    ns_spans = _span_count(city.rows, STREET_BLOCKS_NS)
    span = np.where(ew, STREET_BLOCKS_EW, STREET_BLOCKS_NS)
    index = (cell + _span_shift(line, span)) // span
    return np.where(ew, line * ew_spans + index, (city.rows + 1) * ew_spans + line * ns_spans + index)


def _name_streets(city: City, streets: dict[str, np.ndarray], seed: int) -> None:
    """Give each street a postcode and town (nearest real place) and a name unique in its town."""
    places_x, places_y = city.to_metres([p[3] for p in PLACES], [p[4] for p in PLACES])
    middle = np.stack([(streets["x0"] + streets["x1"]) / 2, (streets["y0"] + streets["y1"]) / 2], 1)
    _, place = cKDTree(np.stack([places_x, places_y], 1)).query(middle)
    towns, town = np.unique(np.array([p[2] for p in PLACES], dtype=object)[place], return_inverse=True)
    order = np.argsort(town, kind="stable")
    rank = np.empty(town.size, dtype=np.int64)
    rank[order] = np.arange(town.size) - np.searchsorted(town[order], town[order])
    rng = _rng(seed, 1)
    base = STREET_NAMES.size
    permutation = rng.permutation(base)
    offset = rng.integers(base, size=towns.size)
    modifier = np.minimum(rank // base, len(_MODIFIERS) - 1)
    streets["name"] = (np.array(_MODIFIERS, dtype=object)[modifier]
                       + STREET_NAMES[permutation[(rank + offset[town]) % base]])
    streets["postcode"] = np.array([p[1] for p in PLACES], dtype=object)[place]
    streets["town"] = np.array([p[2] for p in PLACES], dtype=object)[place]
    streets["quarter"] = np.array([p[0] for p in PLACES], dtype=object)[place]
    _main_street(streets)


MAIN_STREET = "Kaiserstraße"


def _main_street(streets: dict[str, np.ndarray]) -> None:
    """The east-west street through the centre is Kaiserstraße, as in Karlsruhe, whose places the
    demo city borrows: the street a visitor types first must be there. A street of its town that
    drew that name takes the centre street's name instead, so names stay unique in each town."""
    crossing = np.flatnonzero(streets["ew"] & (streets["x0"] <= 0) & (streets["x1"] >= 0))
    if not len(crossing):
        return
    main = crossing[np.argmin(np.abs(streets["y0"][crossing]))]
    namesake = (streets["town"] == streets["town"][main]) & (streets["name"] == MAIN_STREET)
    streets["name"][namesake] = streets["name"][main]
    streets["name"][main] = MAIN_STREET


# -- the generator ---------------------------------------------------------------------------------
STAGES = ("layout", "streets", "medium voltage", "low voltage", "customers", "frames")


def generate_city(customers: int, seed: int = 1, progress: bool = False, meshed: bool = False) -> NetworkFrames:
    """Generate the demo city's network with ``customers`` customers as ``NetworkFrames``.

    Deterministic: the same ``customers`` and ``seed`` give identical frames. ``progress``
    shows a progress bar over the stages. ``meshed``: the same city operated meshed (``mesh``).

    Notes
    -----
    Vectorised over whole arrays; time and memory grow linearly with ``customers``
    (per customer about 0.7 nodes, 0.6 segments and 0.14 devices).
    """
    city = city_for(customers)
    tables = _Tables(city)
    with tqdm(total=len(STAGES), desc="demo city", unit="stage", disable=not progress) as bar:
        def begin(stage: str) -> None:
            if stage != STAGES[0]:
                bar.update()
            bar.set_postfix_str(stage)

        begin("layout")
        blocks = _blocks(city, seed)
        begin("streets")
        streets = _street_grid(city)
        _name_streets(city, streets, seed)
        begin("medium voltage")
        stations = _medium_voltage(city, blocks, streets, tables)
        begin("low voltage")
        houses = _low_voltage(city, blocks, stations, streets, tables)
        begin("customers")
        _customers(blocks, stations, houses, tables, seed)
        begin("frames")
        frames = tables.frames()
        bar.update()
    return mesh(frames) if meshed else frames


def mesh(frames: NetworkFrames) -> NetworkFrames:
    """The city operated meshed: every normally-open tie closed (rings across district borders
    and up the city's edges, each fed from two substations' busbars, so that a section has
    several source edges), and each feeder's exit cable doubled by a parallel one, as utilities
    run their busiest cables. The switches' normal state is closed too: this is how it runs."""
    devices = frames.devices.copy()
    ties = devices["code"].str.startswith("TIE-")
    devices.loc[ties, ["normal_state", "current_state"]] = "closed"
    segments = frames.segments
    exits = segments[segments["code"].str.endswith("-EX")].copy()
    exits["code"] = exits["code"] + "2"
    return replace(frames, devices=devices, segments=pd.concat([segments, exits], ignore_index=True))


class _Tables:
    """Column arrays per layer, added part by part, with geometries already in EPSG:4326."""

    def __init__(self, city: City):
        self.city = city
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in LAYERS}

    def add(self, layer: str, **columns) -> None:
        """Append rows to ``layer``; scalar values apply to every row."""
        size = np.size(columns["code"])
        self.parts[layer].append({
            name: np.full(size, value, dtype=object) if np.ndim(value) == 0 else np.asarray(value).ravel()
            for name, value in columns.items()
        })

    def points(self, x, y) -> np.ndarray:
        """Shapely points from metres."""
        lon, lat = self.city.to_lonlat(np.ravel(x), np.ravel(y))
        return shapely.points(lon, lat)

    def lines(self, x, y, indices=None) -> np.ndarray:
        """Shapely line strings from metres: rows of ``x``, ``y`` or flat coordinates with ``indices``."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if indices is None:
            indices = np.repeat(np.arange(x.shape[0]), x.shape[1])
        lon, lat = self.city.to_lonlat(x.ravel(), y.ravel())
        return shapely.linestrings(lon, lat, indices=indices)

    def frames(self) -> NetworkFrames:
        """One DataFrame per layer, with every column of the layout."""
        frames = NetworkFrames()
        for name, layer in LAYERS.items():
            parts = self.parts[name]
            data = {}
            for column in layer.columns:
                missing = np.nan if column.sql == "double precision" else column.default
                data[column.name] = np.concatenate(
                    [part.get(column.name, np.full(len(part["code"]), missing, dtype=object)) for part in parts])
                if column.sql == "double precision":
                    data[column.name] = data[column.name].astype(float)
            if layer.geometry:
                data["geometry"] = np.concatenate([part["geometry"] for part in parts])
            setattr(frames, name, pd.DataFrame(data))
        frames.segments["ampacity_a"] = frames.segments["conductor"].map(AMPACITY_A).astype(float)
        return frames


def _blocks(city: City, seed: int) -> dict[str, np.ndarray]:
    """One row per block (= transformer), ordered by feeder, trunk position and side of the trunk.

    Customers per block: denser towards the centre, 5 to 60, summing to ``city.customers``.
    """
    pairs, half = city.pairs, city.half_length
    feeder, position, north = (a.ravel() for a in np.meshgrid(
        np.arange(city.feeders), np.arange(1, half + 1), [0, 1], indexing="ij"))
    district, local = np.divmod(feeder, 2 * pairs)
    east, pair = np.divmod(local, pairs)
    i, j = np.divmod(district, city.district_columns)
    row = i * 2 * pairs + 2 * pair + north
    column = j * 2 * half + np.where(east == 1, half + position - 1, half - position)
    x0, y0, x1, y1 = city.block_bounds(row, column)
    distance = np.hypot((x0 + x1) / 2, (y0 + y1) / 2)
    rng = _rng(seed, 2)
    weight = (12 + 40 * np.exp(-distance / 4000)) * rng.lognormal(0, 0.35, feeder.size)
    customers = _share(city.customers, weight, 5, 60, rng)
    units = np.clip(np.rint(customers / 14), 1, 6).astype(np.int64)
    kva = TRANSFORMER_KVA[np.minimum(np.searchsorted(TRANSFORMER_KVA, customers * KVA_PER_CUSTOMER),
                                     TRANSFORMER_KVA.size - 1)]
    return dict(feeder=feeder, position=position, north=north.astype(bool), row=row, column=column,
                x0=x0, y0=y0, x1=x1, y1=y1, customers=customers,
                houses=-(-customers // units), kva=kva)


def _share(total: int, weight: np.ndarray, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Integers proportional to ``weight`` within [low, high] that sum to exactly ``total``."""
    if not low * weight.size <= total <= high * weight.size:
        raise ValueError(f"{total} cannot be split into {weight.size} parts of {low} to {high}")
    counts = np.clip(np.rint(total * weight / weight.sum()), low, high).astype(np.int64)
    while (missing := total - int(counts.sum())) != 0:
        room = np.flatnonzero(counts < high) if missing > 0 else np.flatnonzero(counts > low)
        counts[rng.permutation(room)[:abs(missing)]] += 1 if missing > 0 else -1
    return counts


def _substation_names(city: City, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """"UW <nearest quarter>", numbered when several substations share a quarter."""
    places_x, places_y = city.to_metres([p[3] for p in PLACES], [p[4] for p in PLACES])
    _, nearest = cKDTree(np.stack([places_x, places_y], 1)).query(np.stack([x, y], 1))
    names, seen = [], {}
    for index in nearest:  # one per substation: a few hundred at most
        quarter = PLACES[index][0]
        seen[quarter] = seen.get(quarter, 0) + 1
        names.append(f"UW {quarter}" + (f" {seen[quarter]}" if seen[quarter] > 1 else ""))
    return np.array(names, dtype=object)


@dataclass(frozen=True)
class _Substations:
    """The substations' codes, names and positions, and their two busbars (row 0 west, row 1 east)."""

    code: np.ndarray
    name: np.ndarray
    x: np.ndarray
    y: np.ndarray
    busbars: np.ndarray


@dataclass(frozen=True)
class _Feeders:
    """Every feeder's code and layout: its side of the substation and its trunk's nodes and positions."""

    code: np.ndarray
    district: np.ndarray
    local: np.ndarray       # number within its substation
    east: np.ndarray        # 1 for the feeders going east (busbar 2), else 0
    direction: np.ndarray   # +1 east, -1 west
    overhead: np.ndarray
    mv_kind: np.ndarray     # pole (overhead) or junction (cable)
    lane: np.ndarray        # the trunk's x where it leaves the substation
    y_trunk: np.ndarray
    trunk: np.ndarray       # node codes, one row per feeder: 0 central street, 1..L block middles, L+1 edge
    trunk_x: np.ndarray
    trunk_y: np.ndarray


def _medium_voltage(city: City, blocks: dict, streets: dict, tables: _Tables) -> dict[str, np.ndarray]:
    """Substations, sources, feeders with their trunks, laterals, ties and the MV/LV stations."""
    substations = _substations(city, tables)
    feeders = _feeders(city, substations, tables)
    _feeder_heads(city, substations, feeders, tables)
    _trunk_gaps(city, feeders, tables)
    lateral, tap_x = _laterals(city, feeders, tables)
    stations = _stations(city, blocks, streets, tables, feeders.code, lateral, tap_x, feeders.overhead)
    _ties(city, tables, feeders.code, feeders.trunk, feeders.trunk_x, feeders.y_trunk)
    return stations


def _substations(city: City, tables: _Tables) -> _Substations:
    """A substation near each district centre, with two busbars and a source on each."""
    centre_x, centre_y = city.district_centres()
    sub_x, sub_y = centre_x + 30, centre_y + 30
    substation = _numbered("UW", np.arange(1, city.substations + 1), 3)
    substation_name = _substation_names(city, sub_x, sub_y)
    tables.add("substations", code=substation, name=substation_name, geometry=tables.points(sub_x, sub_y))
    busbars = np.stack([substation + "-SS1", substation + "-SS2"])  # west feeders on 1, east on 2
    tables.add("nodes", code=busbars, kind="busbar", voltage_kv=MV_KV,
               geometry=tables.points(np.stack([sub_x - 3, sub_x + 3]), np.stack([sub_y, sub_y])))
    tables.add("sources", code=np.stack([substation + "-T1", substation + "-T2"]), kind="substation",
               node=busbars, substation=np.stack([substation, substation]))
    return _Substations(substation, substation_name, sub_x, sub_y, busbars)


def _feeders(city: City, substations: _Substations, tables: _Tables) -> _Feeders:
    """The feeders, ``2 * pairs`` per substation, and their trunk nodes out to the district edge."""
    pairs, half = city.pairs, city.half_length
    width, height = city.block_width_m, city.block_height_m
    centre_x, centre_y = city.district_centres()
    feeder = np.arange(city.feeders)
    district, local = np.divmod(feeder, 2 * pairs)
    east, pair = np.divmod(local, pairs)
    i = district // city.district_columns
    direction = np.where(east == 1, 1.0, -1.0)
    x_c, y_c = centre_x[district], centre_y[district]
    y_trunk = city.origin[1] + (i * 2 * pairs + 2 * pair + 1) * height
    overhead = np.hypot(x_c, y_c) > OVERHEAD_BEYOND_M
    mv_kind = np.where(overhead, "pole", "junction").astype(object)
    code = substations.code[district] + _numbered("-F", local + 1, 2)
    tables.add("feeders", code=code, name=substations.name[district] + _numbered(" F", local + 1, 2),
               substation=substations.code[district], voltage_kv=MV_KV,
               rating_kva=np.where(overhead, FEEDER_RATING_KVA[True], FEEDER_RATING_KVA[False]))

    # The trunk: position 0 on the central street, 1..L at block middles, L+1 at the district edge.
    lane = x_c + direction * (1.5 + pair)  # parallel cables out of one substation, side by side
    steps = np.arange(1, half + 1)
    trunk_x = np.column_stack([lane, x_c[:, None] + direction[:, None] * (steps - 0.5) * width,
                               x_c + direction * half * width])
    trunk_y = np.repeat(y_trunk[:, None], half + 2, 1)
    trunk = code[:, None] + _numbered("-M", np.arange(half + 2), 2)[None, :]
    tables.add("nodes", code=trunk, kind=np.repeat(mv_kind, half + 2), voltage_kv=MV_KV,
               feeder=np.repeat(code, half + 2), geometry=tables.points(trunk_x, trunk_y))
    return _Feeders(code, district, local, east, direction, overhead, mv_kind, lane, y_trunk, trunk, trunk_x, trunk_y)


def _feeder_heads(city: City, substations: _Substations, feeders: _Feeders, tables: _Tables) -> None:
    """Each feeder's breaker on its busbar and the cable from it to the trunk's first node."""
    code, district, local = feeders.code, feeders.district, feeders.local
    head_x, head_y = substations.x[district] + (local - city.pairs + 0.5) * 2.5, substations.y[district] - 8
    head = code + "-H"
    tables.add("nodes", code=head, kind="junction", voltage_kv=MV_KV, feeder=code,
               geometry=tables.points(head_x, head_y))
    tables.add("devices", code=code + "-CB", kind="breaker", from_node=substations.busbars[feeders.east, district],
               to_node=head, feeder=code, normal_state="closed", current_state="closed",
               geometry=tables.points(head_x, head_y))
    tables.add("segments", code=code + "-EX", from_node=head, to_node=feeders.trunk[:, 0], feeder=code,
               length_m=np.abs(head_x - feeders.lane) + np.abs(head_y - feeders.y_trunk), conductor=CABLE_TRUNK,
               geometry=tables.lines(np.column_stack([head_x, feeders.lane, feeders.lane]),
                                     np.column_stack([head_y, head_y, feeders.y_trunk])))


def _trunk_gaps(city: City, feeders: _Feeders, tables: _Tables) -> None:
    """The trunk's cables; gap g joins position g to g+1, some starting with a recloser or a sectionaliser."""
    half, code, trunk, trunk_x, trunk_y = city.half_length, feeders.code, feeders.trunk, feeders.trunk_x, feeders.trunk_y
    gap = np.arange(half + 1)
    recloser_gap = max(1, half // 2)
    gap_kind = np.where(gap == recloser_gap, "recloser",
                        np.where((gap % 3 == 1) | (gap == half), "switch", "")).astype(object)
    equipped = gap[gap_kind != ""]
    device_x = trunk_x[:, equipped] + feeders.direction[:, None] * 10
    device_node = code[:, None] + _numbered("-G", equipped, 2)[None, :]
    suffix = np.where(gap_kind[equipped] == "recloser", "-RC", "-SW").astype(object)
    tables.add("nodes", code=device_node, kind=np.repeat(feeders.mv_kind, equipped.size), voltage_kv=MV_KV,
               feeder=np.repeat(code, equipped.size), geometry=tables.points(device_x, trunk_y[:, equipped]))
    tables.add("devices", code=device_node + suffix[None, :], kind=np.tile(gap_kind[equipped], city.feeders),
               from_node=trunk[:, equipped], to_node=device_node, feeder=np.repeat(code, equipped.size),
               normal_state="closed", current_state="closed",
               geometry=tables.points(device_x, trunk_y[:, equipped]))
    start = trunk[:, :-1].copy()
    start[:, equipped] = device_node
    start_x = trunk_x[:, :-1].copy()
    start_x[:, equipped] = device_x
    tables.add("segments", code=code[:, None] + _numbered("-C", gap, 2)[None, :], from_node=start,
               to_node=trunk[:, 1:], feeder=np.repeat(code, gap.size), length_m=np.abs(trunk_x[:, 1:] - start_x),
               conductor=np.repeat(np.where(feeders.overhead, OVERHEAD_TRUNK, CABLE_TRUNK).astype(object), gap.size),
               geometry=tables.lines(np.stack([start_x, trunk_x[:, 1:]], -1).reshape(-1, 2),
                                     np.stack([trunk_y[:, 1:], trunk_y[:, 1:]], -1).reshape(-1, 2)))


def _laterals(city: City, feeders: _Feeders, tables: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """A fused lateral at each block-middle trunk position (it feeds the stations on both sides): codes and x."""
    half, code = city.half_length, feeders.code
    steps = np.arange(1, half + 1)
    lateral = code[:, None] + _numbered("-L", steps, 2)[None, :]
    tap_x, tap_y = feeders.trunk_x[:, 1:-1], feeders.trunk_y[:, 1:-1]
    tables.add("nodes", code=lateral, kind=np.repeat(feeders.mv_kind, half), voltage_kv=MV_KV,
               feeder=np.repeat(code, half), geometry=tables.points(tap_x, tap_y))
    tables.add("devices", code=lateral + "-FU", kind="fuse", from_node=feeders.trunk[:, 1:-1], to_node=lateral,
               feeder=np.repeat(code, half), normal_state="closed", current_state="closed",
               geometry=tables.points(tap_x, tap_y))
    return lateral, tap_x


def _stations(city: City, blocks: dict, streets: dict, tables: _Tables, feeder_code: np.ndarray,
              lateral: np.ndarray, tap_x: np.ndarray, overhead: np.ndarray) -> dict[str, np.ndarray]:
    """An MV/LV station per block on its trunk-side edge, with its lateral cable and area."""
    count = blocks["feeder"].size
    feeder = feeder_code[blocks["feeder"]]
    trunk_y = np.where(blocks["north"], blocks["y0"], blocks["y1"])
    x = tap_x.ravel().repeat(2)
    y = trunk_y + np.where(blocks["north"], CABLE_INSET_M, -CABLE_INSET_M)
    code = _numbered("TR", np.arange(1, count + 1), 6)
    mv, lv, outlet_a, outlet_b = code + "-MV", code + "-LV", code + "-A", code + "-B"
    point = tables.points(x, y)
    tables.add("nodes", code=mv, kind="junction", voltage_kv=MV_KV, feeder=feeder, geometry=point)
    tables.add("nodes", code=np.concatenate([lv, outlet_a, outlet_b]), kind="lv", voltage_kv=LV_KV,
               feeder=np.tile(feeder, 3), geometry=np.tile(point, 3))
    tables.add("segments", code=code + "-K", from_node=lateral.ravel().repeat(2), to_node=mv, feeder=feeder,
               length_m=CABLE_INSET_M,
               conductor=np.where(overhead, OVERHEAD_LATERAL, CABLE_LATERAL).astype(object)[blocks["feeder"]],
               geometry=tables.lines(np.column_stack([x, x]), np.column_stack([trunk_y, y])))
    trunk_street = streets["raw"][_street_of(city, True, blocks["row"] + 1 - blocks["north"], blocks["column"])]
    name = "ONS " + streets["name"][trunk_street]
    tables.add("devices", code=code, kind="transformer", name=name, from_node=mv, to_node=lv, feeder=feeder,
               normal_state="closed", current_state="closed", rated_kva=blocks["kva"], geometry=point)
    tables.add("devices", code=np.concatenate([code + "-FA", code + "-FB"]), kind="fuse",
               from_node=np.tile(lv, 2), to_node=np.concatenate([outlet_a, outlet_b]), feeder=np.tile(feeder, 2),
               normal_state="closed", current_state="closed", geometry=np.tile(point, 2))
    inset = STREET_HALF_WIDTH_M
    corners_x = np.column_stack([blocks["x0"] + inset, blocks["x1"] - inset, blocks["x1"] - inset,
                                 blocks["x0"] + inset, blocks["x0"] + inset])
    corners_y = np.column_stack([blocks["y0"] + inset, blocks["y0"] + inset, blocks["y1"] - inset,
                                 blocks["y1"] - inset, blocks["y0"] + inset])
    lon, lat = city.to_lonlat(corners_x, corners_y)
    area = _numbered("TA", np.arange(1, count + 1), 6)
    tables.add("transformer_areas", code=area, name=name, transformer=code,
               geometry=shapely.polygons(np.stack([lon, lat], -1)))
    return dict(code=code, area=area, feeder=feeder, outlet_a=outlet_a, outlet_b=outlet_b)


def _ties(city: City, tables: _Tables, code: np.ndarray, trunk: np.ndarray, trunk_x: np.ndarray,
          y_trunk: np.ndarray) -> None:
    """Normally-open ties between trunk ends: across district boundaries, and on the city's
    west and east edges up the boundary street to the next row pair's feeder."""
    pairs, columns = city.pairs, city.district_columns
    district = np.arange(city.substations)
    inner = district[district % columns < columns - 1]
    west_end = (inner[:, None] * 2 * pairs + pairs + np.arange(pairs)).ravel()  # east feeders ...
    east_end = ((inner + 1)[:, None] * 2 * pairs + np.arange(pairs)).ravel()  # ... meet west feeders
    tables.add("devices", code="TIE-" + code[west_end] + "-" + code[east_end], kind="switch",
               from_node=trunk[west_end, -1], to_node=trunk[east_end, -1], feeder=code[west_end],
               normal_state="open", current_state="open",
               geometry=tables.points(trunk_x[west_end, -1], y_trunk[west_end]))

    row_pair = np.arange(city.district_rows * pairs)
    i, pair = np.divmod(row_pair, pairs)
    edge = np.concatenate([(i * columns) * 2 * pairs + pair,  # west side of the west column
                           (i * columns + columns - 1) * 2 * pairs + pairs + pair])  # east of the east one
    runs = row_pair.size
    lower = np.concatenate([edge[:runs - 1], edge[runs:-1]])
    upper = np.concatenate([edge[1:runs], edge[runs + 1:]])
    x = trunk_x[lower, -1]
    tie_node = code[upper] + "-TN"
    tables.add("nodes", code=tie_node, kind="junction", voltage_kv=MV_KV, feeder=code[upper],
               geometry=tables.points(x, y_trunk[lower] + 10))
    tables.add("devices", code="TIE-" + code[lower] + "-" + code[upper], kind="switch",
               from_node=trunk[lower, -1], to_node=tie_node, feeder=code[lower], normal_state="open",
               current_state="open", geometry=tables.points(x, y_trunk[lower]))
    tables.add("segments", code=code[upper] + "-TC", from_node=tie_node, to_node=trunk[upper, -1],
               feeder=code[upper], length_m=y_trunk[upper] - y_trunk[lower] - 10, conductor=CABLE_TRUNK,
               geometry=tables.lines(np.column_stack([x, x]), np.column_stack([y_trunk[lower] + 10, y_trunk[upper]])))


def _perimeter(u, x0, y0, w: float, h: float):
    """Points at distance ``u`` counter-clockwise from the south-west corner of a w x h rectangle,
    and the side they are on (0 south, 1 east, 2 north, 3 west)."""
    side = np.searchsorted(np.array([w, w + h, 2 * w + h]), u, side="right")
    x = np.select([side == 0, side == 1, side == 2], [u, w, 2 * w + h - u], 0.0)
    y = np.select([side == 0, side == 1, side == 2], [0.0, u - w, h], 2 * (w + h) - u)
    return x0 + x, y0 + y, side


_INWARD = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])


def _low_voltage(city: City, blocks: dict, stations: dict, streets: dict, tables: _Tables) -> dict[str, np.ndarray]:
    """Houses round each block, on two LV cables leaving the station in opposite directions."""
    w = city.block_width_m - 2 * CABLE_INSET_M
    h = city.block_height_m - 2 * CABLE_INSET_M
    perimeter = 2 * (w + h)
    houses = blocks["houses"]
    count = int(houses.sum())
    block = np.repeat(np.arange(houses.size), houses)
    index = np.arange(count)
    nth = index - np.repeat(np.cumsum(houses) - houses, houses)
    # t: distance along the cable counter-clockwise from the station (on the trunk-side edge).
    station_u = np.where(blocks["north"], w / 2, w + h + w / 2)[block]
    t = (nth + 0.5) * perimeter / houses[block]
    left_x, left_y = blocks["x0"][block] + CABLE_INSET_M, blocks["y0"][block] + CABLE_INSET_M
    cable_x, cable_y, side = _perimeter((t + station_u) % perimeter, left_x, left_y, w, h)
    code = _numbered("LV", index + 1, 7)
    feeder = stations["feeder"][block]
    tables.add("nodes", code=code, kind="lv", voltage_kv=LV_KV, feeder=feeder,
               geometry=tables.points(cable_x, cable_y))

    # Chain a runs counter-clockwise (t rising) from outlet A, chain b clockwise from outlet B.
    chain_a = t < perimeter / 2
    first_a, last_b = nth == 0, nth == houses[block] - 1
    before, after = np.maximum(index - 1, 0), np.minimum(index + 1, count - 1)
    previous = np.where(chain_a, np.where(first_a, stations["outlet_a"][block], code[before]),
                        np.where(last_b, stations["outlet_b"][block], code[after]))
    low = np.where(chain_a, np.where(first_a, 0.0, t[before]), t)
    high = np.where(chain_a, t, np.where(last_b, perimeter, t[after]))
    corners = np.sort((np.array([0, w, w + h, 2 * w + h])[None, :] - station_u[:, None]) % perimeter, axis=1)
    path = np.column_stack([low, corners, high])
    keep = np.column_stack([np.ones(count, bool), (corners > low[:, None]) & (corners < high[:, None]),
                            np.ones(count, bool)])
    path = np.where(chain_a[:, None], path, path[:, ::-1])  # from the previous node to this house
    keep = np.where(chain_a[:, None], keep, keep[:, ::-1])
    path_x, path_y, _ = _perimeter(((path + station_u[:, None]) % perimeter)[keep],
                                   np.repeat(left_x, 6).reshape(-1, 6)[keep],
                                   np.repeat(left_y, 6).reshape(-1, 6)[keep], w, h)
    tables.add("segments", code=_numbered("LVC", index + 1, 7), from_node=previous, to_node=code, feeder=feeder,
               length_m=high - low, conductor=CABLE_LV,
               geometry=tables.lines(path_x, path_y, np.repeat(index, keep.sum(1))))

    house_x = cable_x + HOUSE_SETBACK_M * _INWARD[side, 0]
    house_y = cable_y + HOUSE_SETBACK_M * _INWARD[side, 1]
    street, number = _house_numbers(city, blocks, block, side, cable_x, cable_y, streets)
    address = (streets["name"][street] + " " + number.astype(str).astype(object) + ", "
               + streets["postcode"][street] + " " + streets["town"][street])
    return dict(code=code, block=block, nth=nth, x=house_x, y=house_y, address=address)


def _house_numbers(city: City, blocks: dict, block: np.ndarray, side: np.ndarray, x: np.ndarray,
                   y: np.ndarray, streets: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each house's street and number: counted from the end nearest the centre, odd on the left."""
    row, column = blocks["row"][block], blocks["column"][block]
    east_west = (side == 0) | (side == 2)
    line = np.select([side == 0, side == 1, side == 2], [row, column + 1, row + 1], column)
    street = streets["raw"][_street_of(city, east_west, line, np.where(east_west, column, row))]
    outward = streets["outward"][street]
    # North of an east-west street (a block's south side) or west of a north-south one (east side).
    north_or_west = np.where(east_west, side == 0, side == 1)
    odd = north_or_west == (outward == 1)
    key = outward * np.where(east_west, x, y)
    order = np.lexsort((key, ~odd, street))
    group = (street * 2 + ~odd)[order]
    first = np.r_[True, group[1:] != group[:-1]]
    rank = np.empty(block.size, dtype=np.int64)
    rank[order] = np.arange(block.size) - np.maximum.accumulate(np.where(first, np.arange(block.size), 0))
    return street, 2 * rank + np.where(odd, 1, 2)


def _customers(blocks: dict, stations: dict, houses: dict, tables: _Tables, seed: int) -> None:
    """Service points: each house's customers, with names, unique accounts and phone numbers."""
    block = houses["block"]
    per_house, extra = np.divmod(blocks["customers"][block], blocks["houses"][block])
    units = per_house + (houses["nth"] < extra)
    house = np.repeat(np.arange(block.size), units)
    count = house.size
    rng = _rng(seed, 3)
    surname = SURNAMES[rng.integers(SURNAMES.size, size=count)]
    person = FIRST_NAMES[rng.integers(FIRST_NAMES.size, size=count)] + " " + surname
    business = np.array(BUSINESSES, dtype=object)[rng.integers(len(BUSINESSES), size=count)]
    name = np.where(rng.random(count) < BUSINESS_SHARE, business[:, 0] + surname + business[:, 1], person)
    phone = DRAMA_NUMBER_PREFIXES[rng.integers(DRAMA_NUMBER_PREFIXES.size, size=count)] \
        + _DIGITS[3][rng.integers(1000, size=count)]
    phone = np.where(rng.random(count) < PHONE_SHARE, phone, None)
    tables.add("service_points", code=_numbered("SP", np.arange(1, count + 1), 7),
               account_number=account_numbers(count, seed), name=name, phone=phone,
               address=houses["address"][house], node=houses["code"][house],
               transformer_area=stations["area"][block[house]], in_service=True,
               # a stream of its own, so that the demand leaves every other drawn value as it was
               demand_kw=np.round(_rng(seed, 5).uniform(*DEMAND_KW, size=count), 1),
               geometry=tables.points(houses["x"][house], houses["y"][house]))


def account_numbers(count: int, seed: int) -> np.ndarray:
    """``count`` distinct 10-digit account numbers: 9 scattered digits and a Luhn check digit.

    >>> numbers = account_numbers(3, seed=1)
    >>> len(set(numbers)), all(len(n) == 10 and luhn_valid(n) for n in numbers)
    (3, True)
    """
    space = 900_000_000  # 2^8 3^2 5^8: an affine map with a multiplier coprime to it is a bijection
    rng = _rng(seed, 4)
    multiplier = int(rng.integers(10_000_000, 100_000_000))
    while math.gcd(multiplier, space) != 1:
        multiplier += 1
    body = 100_000_000 + (multiplier * np.arange(count, dtype=np.int64) + int(rng.integers(space))) % space
    digits = (body[:, None] // 10 ** np.arange(9)) % 10  # rightmost first
    doubled = digits * np.where(np.arange(9) % 2 == 0, 2, 1)
    check = (10 - (doubled - 9 * (doubled > 9)).sum(1) % 10) % 10
    return (body * 10 + check).astype(str).astype(object)


def luhn_valid(number: str) -> bool:
    """Whether ``number``'s last digit is its Luhn check digit."""
    total = 0
    for position, digit in enumerate(int(c) for c in reversed(number)):
        digit *= 2 if position % 2 else 1
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0
