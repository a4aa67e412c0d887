#!/usr/bin/env python3
"""Checks the Brașov city folder for consistency. Needs Python >= 3.11 and shapely >= 2.0.

Run: ``python3 tools/check_city.py`` (exit code 0 when every check passes).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from shapely.geometry import Point, shape
from shapely.ops import unary_union

HERE = Path(__file__).resolve().parent.parent

CATEGORY_IDS = [
    "water_leak", "no_water", "sewer_overflow", "power_outage", "fallen_power_line", "gas_smell",
    "district_heating_failure", "pothole", "road_damage", "traffic_light_failure", "congestion",
    "road_accident", "fallen_tree", "flooding", "snow_ice", "street_light_out", "illegal_dumping",
    "abandoned_vehicle", "other",
]
FAMILIES = {"water", "sewer", "power", "gas", "heating", "road", "traffic", "environment",
            "sanitation", "other"}
SEVERITIES = {"minor", "moderate", "severe", "extreme"}
DIRECTIONS = {"N", "NE", "E", "SE", "S", "SW", "W", "NW"}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# Where each sensor must be.
SENSOR_DISTRICT = {
    "tc-eroilor-e": "centrul-istoric", "tc-eroilor-w": "centrul-istoric",
    "tc-castelului-se": "blumana", "tc-lunga-n": "brasovechi", "tc-carierei-nw": "bartolomeu",
    "tc-iuliu-maniu-n": "centrul-nou", "tc-15-noiembrie-ne": "centrul-nou",
    "tc-victoriei-ne": "centrul-nou", "tc-garii-n": "garii", "tc-vlahuta-e": "florilor",
    "tc-calea-bucuresti-se": "calea-bucuresti", "tc-calea-bucuresti-nw": "calea-bucuresti",
    "tc-calea-bucuresti-darste-s": "darste", "tc-dn1-dambul-morii-s": "darste",
    "tc-carpatilor-e": "racadau", "tc-saturn-ne": "astra", "tc-zizinului-s": "noua",
    "tc-harmanului-ne": "timis-triaj", "tc-harmanului-triaj-ne": "triaj",
    "tc-cernatului-e": "calea-bucuresti", "tc-13-decembrie-n": "tractorul",
    "tc-labis-n": "tractorul", "tc-grivitei-n": "bartolomeu-nord",
    "tc-grivitei-s": "bartolomeu-nord", "tc-dn13-n": "stupini",
    "tc-dn1-ghimbav-w": "bartolomeu-nord", "tc-poienii-s": "poiana-brasov",
    "tc-poiana-statiune-sw": "poiana-brasov",
}

failures: list[str] = []
passed = 0


def check(ok: bool, what: str) -> None:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL {what}")


def load_toml(name: str) -> dict:
    with open(HERE / name, "rb") as f:
        return tomllib.load(f)


def load_json(name: str) -> dict:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def ring_ok(ring: list, where: str, exterior: bool) -> None:
    check(len(ring) >= 4 and ring[0] == ring[-1], f"{where}: ring closed, at least 4 positions")
    check(all(len(p) == 2 and -180 <= p[0] <= 180 and -90 <= p[1] <= 90 for p in ring),
          f"{where}: positions are [lon, lat]")
    check(all(round(c, 6) == c for p in ring for c in p), f"{where}: rounded to 6 decimals")
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:]))
    check((area2 > 0) == exterior, f"{where}: {'exterior ring CCW' if exterior else 'hole CW'}")


def geometry_ok(geom: dict, where: str, polygon_only: bool = False) -> None:
    kinds = {"Polygon"} if polygon_only else {"Polygon", "MultiPolygon"}
    check(geom["type"] in kinds, f"{where}: geometry is {' or '.join(sorted(kinds))}")
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    for poly in polys:
        for i, ring in enumerate(poly):
            ring_ok(ring, where, exterior=(i == 0))
    check(shape(geom).is_valid, f"{where}: valid (shapely)")


def main() -> int:
    city = load_toml("city.toml")
    check(city["id"] == "brasov" and city["fallback_agency"] == "city-dispatch", "city.toml ids")
    check(city["default_language"] in city["languages"], "default language offered")
    w, s, e, n = city["bounds"]

    # -- boundary ----------------------------------------------------------------------------
    b = load_json("boundary.geojson")
    check(b["type"] == "Feature" and b["properties"] == {"id": "brasov", "name": "Brașov"},
          "boundary: one Feature with properties {id, name}")
    geometry_ok(b["geometry"], "boundary", polygon_only=True)
    boundary = shape(b["geometry"])
    bw, bs, be, bn = boundary.bounds
    check(w <= bw and s <= bs and e >= be and n >= bn, "city bounds cover the boundary")
    check(boundary.contains(Point(city["center"])), "city centre inside the boundary")
    for name, pt in {"Piața Sfatului": (25.5887, 45.6419), "Poiana Brașov": (25.555, 45.594),
                     "Gara Brașov": (25.616, 45.661), "Stupini": (25.565, 45.700),
                     "Dârste": (25.650, 45.610)}.items():
        check(boundary.contains(Point(pt)), f"boundary contains {name}")

    # -- districts ---------------------------------------------------------------------------
    d = load_json("districts.geojson")
    check(d["type"] == "FeatureCollection", "districts: FeatureCollection")
    districts = {}
    for f in d["features"]:
        props = f["properties"]
        did = props["id"]
        check(set(props) == {"id", "name"}, f"district {did}: properties are id and name")
        check(bool(KEBAB.match(did)), f"district {did}: kebab-case ascii id")
        check(did not in districts, f"district {did}: unique id")
        geometry_ok(f["geometry"], f"district {did}", polygon_only=True)
        districts[did] = shape(f["geometry"])
    names = {f["properties"]["id"]: f["properties"]["name"] for f in d["features"]}
    for required in ["Centrul Istoric", "Șcheii Brașovului", "Bartolomeu", "Bartolomeu Nord",
                     "Tractorul", "Astra", "Noua", "Răcădău", "Florilor", "Valea Cetății",
                     "Triaj", "Stupini", "Dârste", "Calea București", "Centrul Nou",
                     "Poiana Brașov", "Blumăna", "Prund", "Gării"]:
        check(required in names.values(), f"district {required} present")
    ids = sorted(districts)
    worst = 0.0
    for i, a in enumerate(ids):
        for bid in ids[i + 1:]:
            worst = max(worst, districts[a].intersection(districts[bid]).area)
    check(worst <= 1e-9, f"no overlap between districts (largest {worst:.2e} deg²)")
    union = unary_union(list(districts.values()))
    gap = boundary.difference(union).area
    outside = union.difference(boundary).area
    check(gap <= 1e-9 and outside <= 1e-9,
          f"districts tile the boundary (gap {gap:.2e}, outside {outside:.2e} deg²)")

    # -- categories --------------------------------------------------------------------------
    cats = load_toml("categories.toml")["category"]
    check([c["id"] for c in cats] == CATEGORY_IDS, "categories: exactly the 19 ids, in order")
    for c in cats:
        cid = c["id"]
        check(set(c["name"]) == {"ro", "en"} and all(c["name"].values()), f"category {cid}: ro/en name")
        check(c["family"] in FAMILIES, f"category {cid}: family")
        check(c["default_severity"] in SEVERITIES, f"category {cid}: severity")
        check(isinstance(c["merge_radius_m"], (int, float)) and c["merge_radius_m"] > 0,
              f"category {cid}: merge radius")
        check(isinstance(c["merge_window_minutes"], int) and c["merge_window_minutes"] > 0,
              f"category {cid}: merge window")
        dl = c.get("deadlines", {})
        ack, res = dl.get("acknowledge_minutes"), dl.get("resolve_minutes")
        check(isinstance(ack, int) and isinstance(res, int) and 0 < ack <= res,
              f"category {cid}: deadlines (0 < acknowledge_minutes <= resolve_minutes)")
        for sev in SEVERITIES:
            o = dl.get(sev)
            if o is not None:
                oa, orr = o.get("acknowledge_minutes", ack), o.get("resolve_minutes", res)
                check(isinstance(oa, int) and isinstance(orr, int) and 0 < oa <= orr,
                      f"category {cid}: deadlines for {sev}")

    # -- agencies ----------------------------------------------------------------------------
    agencies = load_toml("agencies.toml")["agency"]
    aids = [a["id"] for a in agencies]
    check(len(set(aids)) == len(aids), "agencies: unique ids")
    check(city["fallback_agency"] in aids, "fallback agency exists")
    cat_ids = set(CATEGORY_IDS)
    for a in agencies:
        aid = a["id"]
        check(set(a["name"]) == {"ro", "en"}, f"agency {aid}: ro/en name")
        check(set(a["categories"]) <= cat_ids, f"agency {aid}: known categories")
        check(isinstance(a["priority"], int), f"agency {aid}: integer priority")
        contact = a.get("contact", {})
        check(all(".example" in contact.get(k, ".example") for k in ("email", "url")),
              f"agency {aid}: placeholder contact under .example")
        j = a["jurisdiction"]
        check(set(j) <= {"whole_city", "districts", "file"} and bool(j),
              f"agency {aid}: jurisdiction form")
        areas = []
        if j.get("whole_city"):
            areas.append(boundary)
        for did in j.get("districts", []):
            check(did in districts, f"agency {aid}: district {did} exists")
            areas.append(districts.get(did, boundary))
        if "file" in j:
            fc = load_json(j["file"])
            check(fc["type"] == "FeatureCollection", f"agency {aid}: {j['file']} is a FeatureCollection")
            for f in fc["features"]:
                check(set(f["properties"]) == {"id", "name"}, f"agency {aid}: file feature properties")
                geometry_ok(f["geometry"], f"{j['file']} {f['properties'].get('id')}")
                g = shape(f["geometry"])
                check(g.difference(boundary).area <= 1e-9, f"agency {aid}: file area inside the city")
                areas.append(g)
        check(unary_union(areas).area > 0, f"agency {aid}: non-empty jurisdiction")
    dispatch = next(a for a in agencies if a["id"] == city["fallback_agency"])
    check(set(dispatch["categories"]) == cat_ids and dispatch["jurisdiction"].get("whole_city"),
          "city-dispatch handles every category in the whole city")
    check(dispatch["priority"] > max(a["priority"] for a in agencies if a is not dispatch),
          "city-dispatch is asked last")
    for c in cats:
        check(any(a["kind"] == c["agency_kind"] and c["id"] in a["categories"] for a in agencies),
              f"category {c['id']}: handled by an agency of kind {c['agency_kind']}")
    # The local police sectors and the sanitation zones each cover the city exactly once.
    for kind in ("local_police", "sanitation"):
        parts = []
        for a in agencies:
            if a["kind"] != kind:
                continue
            j = a["jurisdiction"]
            g = [districts[x] for x in j.get("districts", [])]
            if "file" in j:
                g += [shape(f["geometry"]) for f in load_json(j["file"])["features"]]
            parts.append(unary_union(g))
        overlap = sum(p.intersection(q).area for i, p in enumerate(parts) for q in parts[i + 1:])
        gap = boundary.difference(unary_union(parts)).area
        check(overlap <= 1e-9 and gap <= 1e-9, f"{kind} areas tile the city once")

    # -- sensors -----------------------------------------------------------------------------
    sensors = load_toml("sensors.toml")["sensor"]
    sids = [x["id"] for x in sensors]
    check(len(set(sids)) == len(sids), "sensors: unique ids")
    check(set(sids) == set(SENSOR_DISTRICT), "sensors: the expected set")
    for x in sensors:
        sid = x["id"]
        p = Point(x["location"])
        check(boundary.contains(p), f"sensor {sid} inside the boundary")
        inside = [did for did, g in districts.items() if g.contains(p)]
        check(inside == [SENSOR_DISTRICT.get(sid)],
              f"sensor {sid} in district {SENSOR_DISTRICT.get(sid)} (found {inside})")
        check(x["direction"] in DIRECTIONS, f"sensor {sid}: direction")
        check(x["free_flow_speed_kmh"] > 0 and isinstance(x["lanes"], int) and x["lanes"] > 0,
              f"sensor {sid}: speed and lanes")
        check(bool(x["name"]) and bool(x["road"]), f"sensor {sid}: name and road")

    print(f"{len(districts)} districts, {len(cats)} categories, {len(agencies)} agencies, "
          f"{len(sensors)} sensors")
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
