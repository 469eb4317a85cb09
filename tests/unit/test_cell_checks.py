"""The checks on a grid cell's shape and team that need no database: rings as sent, validity
with the place of the fault, and the team's rules."""
from __future__ import annotations

import pytest
from shapely.geometry import Polygon

from geo.cell_checks import MAX_VERTICES, parse_polygon, shape_problems, utm_srid
from geo.cells import parse_code, parse_team
from geo.errors import Invalid

SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]


def test_a_closed_polygon_and_a_multipolygon_parse():
    polygon, problems = parse_polygon({"type": "Polygon", "coordinates": [SQUARE]})
    assert problems == [] and polygon.area == 1
    multi, problems = parse_polygon({"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE]]}})
    assert problems == [] and multi.geom_type == "MultiPolygon"


@pytest.mark.parametrize("ring, kind", [(SQUARE[:-1], "not_closed"), ([[0, 0], [1, 0], [0, 0]], "too_few_points")])
def test_rings_as_sent_must_be_closed_with_four_positions(ring, kind):
    geometry, problems = parse_polygon({"type": "Polygon", "coordinates": [ring]})
    assert geometry is None and [p.kind for p in problems] == [kind]
    assert problems[0].geometry == {"type": "Point", "coordinates": [0, 0]}


@pytest.mark.parametrize("value", [
    None, {"type": "Point", "coordinates": [0, 0]}, {"type": "Polygon", "coordinates": "x"},
    {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [1, 1], [0, 0]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [float("nan"), 0], [1, 1], [0, 0]]]},
    {"type": "MultiPolygon", "coordinates": [5]},
    {"type": "Polygon", "coordinates": [[[0, 0]] * (MAX_VERTICES + 1)]},
])
def test_what_is_no_polygon_at_all_is_a_bad_request(value):
    with pytest.raises(Invalid) as raised:
        parse_polygon(value)
    assert raised.value.field == "geometry"


def test_a_self_intersection_is_reported_where_it_happens():
    bowtie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    [problem] = shape_problems(bowtie)
    assert problem.kind == "invalid" and problem.geometry == {"type": "Point", "coordinates": [1.0, 1.0]}
    hole_outside = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], [[(2, 2), (3, 2), (3, 3), (2, 2)]])
    assert [p.kind for p in shape_problems(hole_outside)] == ["invalid"]
    assert shape_problems(Polygon(SQUARE)) == []


def test_utm_zones_north_and_south():
    assert utm_srid(Polygon([(116.3, 39.9), (116.4, 39.9), (116.4, 40.0)])) == 32650  # Beijing
    assert utm_srid(Polygon([(-58.4, -34.6), (-58.3, -34.6), (-58.3, -34.5)])) == 32721  # Buenos Aires


def test_the_team_has_one_manager_and_each_area_one_manager():
    team = parse_team([{"name": " Li Wei ", "phone": "+86 (571) 123-4", "duty": "manager"},
                       {"name": "Wang", "phone": "0571 5678", "duty": "transformer_area_manager",
                        "transformer_areas": ["TA1", "TA2", "TA1"]}])
    assert team[0].name == "Li Wei" and team[1].transformer_areas == ("TA1", "TA2")
    manager = {"name": "A", "phone": "123", "duty": "manager"}
    area = {"name": "B", "phone": "123", "duty": "transformer_area_manager", "transformer_areas": ["TA1"]}
    for bad in ([manager, manager], [area, {**area, "name": "C"}], [{**manager, "transformer_areas": ["TA1"]}],
                [{**manager, "phone": "call me"}], [{**manager, "phone": "12"}], [{**manager, "duty": "boss"}],
                [{**manager, "name": ""}], [{**manager, "salary": 1}], "team", [area] * 201):
        with pytest.raises(Invalid):
            parse_team(bad)


@pytest.mark.parametrize("code", ["", " ", "a b", "x" * 65, "coverage", "EXPORT", None, 7, "a/b"])
def test_cell_codes(code):
    with pytest.raises(Invalid):
        parse_code(code)
