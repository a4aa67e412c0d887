#!/usr/bin/env python3
"""Builds the geometry of the Brașov demo city.

Writes, next to this folder:

* ``boundary.geojson``  - the municipality as one Polygon Feature;
* ``districts.geojson`` - the districts (cartiere), tiling the municipality;
* ``jurisdictions/salubrizare-zona-*.geojson`` - the two waste-collection zones, one file each;
* ``jurisdictions/poiana-brasov-statiune.geojson`` - the mountain resort's maintenance area.

How: the districts are the Voronoi cells of one centre point per district, computed in a local
equirectangular projection (so that distances are roughly metric), then clipped to the boundary.
Everything is rounded to 6 decimals (about 0.1 m), rings are closed and counter-clockwise
(RFC 7946), and the output is deterministic: same input, byte-identical files.

Where the coordinates come from: the boundary is a strong simplification (118 of its about
1,900 vertices, small bends cut) of the administrative outline of the municipality in
OpenStreetMap (© OpenStreetMap contributors, ODbL); the district centres are the positions of
well-known landmarks or public-transport stops of each neighbourhood (for example Piața Sfatului,
Piața Unirii, Gara Brașov, Piața Tractorul, the Triaj and Noua bus stops), read from public maps
to within a few hundred metres. The lines between two districts are Voronoi lines, not the
official limits: every polygon here is an approximation, good for a demo and for routing tests,
not for cadastral or legal use.

Requires shapely >= 2.0 (``pip install shapely``). Run: ``python3 tools/make_districts.py``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

try:
    from shapely import make_valid, set_precision
    from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon, box
    from shapely.geometry.polygon import orient
    from shapely.ops import unary_union, voronoi_diagram
    from shapely import affinity
except ImportError:  # pragma: no cover
    sys.exit("shapely is needed: pip install shapely")

HERE = Path(__file__).resolve().parent.parent  # cities/brasov

# --------------------------------------------------------------------------------------------
# The municipality, [lon, lat], counter-clockwise, starting at the north-west corner (Stupini
# fields) and going down the west side (Ghimbav border), round Poiana Brașov and Postăvarul in
# the south, up the Timiș valley and the east side (Dârste, Săcele border), round the Triaj
# railway spur in the east, and back west along the north side (Sânpetru border, Stupini).
# --------------------------------------------------------------------------------------------
BOUNDARY = [
    (25.5440, 45.7270), (25.5414, 45.7200), (25.5414, 45.7100), (25.5402, 45.7036),
    (25.5437, 45.6948), (25.5334, 45.6882), (25.5395, 45.6845), (25.5411, 45.6815),
    (25.5325, 45.6765), (25.5381, 45.6700), (25.5276, 45.6630), (25.5354, 45.6622),
    (25.5417, 45.6523), (25.5244, 45.6464), (25.5149, 45.6435), (25.5203, 45.6387),
    (25.5116, 45.6355), (25.5076, 45.6376), (25.5115, 45.6318), (25.5100, 45.6285),
    (25.5200, 45.6264), (25.5238, 45.6177), (25.5206, 45.6121), (25.5123, 45.6057),
    (25.5036, 45.5959), (25.5078, 45.5895), (25.5166, 45.5845), (25.5083, 45.5803),
    (25.5152, 45.5718), (25.5160, 45.5646), (25.5199, 45.5595), (25.5293, 45.5558),
    (25.5383, 45.5530), (25.5457, 45.5571), (25.5560, 45.5627), (25.5609, 45.5659),
    (25.5629, 45.5621), (25.5667, 45.5546), (25.5693, 45.5464), (25.5688, 45.5420),
    (25.5562, 45.5314), (25.5694, 45.5313), (25.5740, 45.5271), (25.5800, 45.5340),
    (25.5880, 45.5400), (25.5875, 45.5520), (25.5959, 45.5590), (25.6045, 45.5657),
    (25.6097, 45.5715), (25.6195, 45.5796), (25.6208, 45.5840), (25.6259, 45.5878),
    (25.6327, 45.5928), (25.6405, 45.5990), (25.6460, 45.6010), (25.6518, 45.6050),
    (25.6582, 45.6110), (25.6554, 45.6190), (25.6575, 45.6331), (25.6575, 45.6400),
    (25.6556, 45.6437), (25.6562, 45.6490), (25.6520, 45.6552), (25.6479, 45.6561),
    (25.6480, 45.6594), (25.6539, 45.6625), (25.6555, 45.6660), (25.6583, 45.6694),
    (25.6774, 45.6755), (25.6889, 45.6791), (25.6842, 45.6780), (25.6636, 45.6737),
    (25.6518, 45.6729), (25.6554, 45.6801), (25.6490, 45.6872), (25.6375, 45.6835),
    (25.6307, 45.6813), (25.6258, 45.6792), (25.6249, 45.6776), (25.6205, 45.6800),
    (25.6190, 45.6830), (25.6219, 45.6853), (25.6196, 45.6863), (25.6154, 45.6872),
    (25.6138, 45.6865), (25.6125, 45.6900), (25.6100, 45.6925), (25.6098, 45.6950),
    (25.6060, 45.6965), (25.6030, 45.6978), (25.6032, 45.6995), (25.6015, 45.7005),
    (25.6012, 45.7030), (25.5980, 45.7045), (25.5975, 45.7075), (25.5985, 45.7125),
    (25.6031, 45.7120), (25.6030, 45.7150), (25.6022, 45.7180), (25.6001, 45.7198),
    (25.6006, 45.7225), (25.6022, 45.7255), (25.6037, 45.7290), (25.6058, 45.7333),
    (25.6088, 45.7398), (25.6076, 45.7434), (25.6021, 45.7431), (25.6033, 45.7510),
    (25.5981, 45.7497), (25.5934, 45.7500), (25.5884, 45.7523), (25.5828, 45.7497),
    (25.5761, 45.7471), (25.5732, 45.7421), (25.5700, 45.7386), (25.5606, 45.7336),
    (25.5503, 45.7306), (25.5455, 45.7293),
]

# --------------------------------------------------------------------------------------------
# One centre point per district: id, proper Romanian name, [lon, lat], and what the point is.
# Order matters only for the order of the output features.
# --------------------------------------------------------------------------------------------
DISTRICTS = [
    ("centrul-istoric", "Centrul Istoric", (25.5887, 45.6419), "Piața Sfatului, inside the old walls"),
    ("prund", "Prund", (25.5792, 45.6362), "Piața Unirii, the former Piața Prundului, lower Șchei"),
    ("scheii-brasovului", "Șcheii Brașovului", (25.5700, 45.6295), "upper Șchei: Str. Junilor, Variște, Podul Crețului"),
    ("blumana", "Blumăna", (25.5975, 45.6415), "Str. Nicolae Bălcescu / Str. Castelului, east of the walls"),
    ("brasovechi", "Brașovechi", (25.5860, 45.6525), "Str. Lungă / Str. Bisericii Române"),
    ("bartolomeu", "Bartolomeu", (25.5720, 45.6575), "Str. Carierei, Str. Lungă's north end, Stadionul Municipal"),
    ("bartolomeu-nord", "Bartolomeu Nord", (25.5700, 45.6690), "north of the railway: Str. Zlatna, Str. Agricultorilor"),
    ("stupini", "Stupini", (25.5650, 45.7000), "Stupini village centre and the fields to the north"),
    ("tractorul", "Tractorul", (25.6080, 45.6720), "Piața Tractorul, Str. 13 Decembrie, Rulmentul"),
    ("coresi", "Coresi", (25.6250, 45.6710), "the Coresi quarter on the former Tractorul works"),
    ("triaj", "Triaj", (25.6450, 45.6745), "Triaj (marshalling yard) and Fundătura Hărmanului"),
    ("timis-triaj", "Timiș-Triaj", (25.6450, 45.6630), "the Timiș-Triaj industrial area by CET Brașov"),
    ("craiter", "Craiter", (25.6320, 45.6580), "Str. Ceferiștilor, east of the railway station"),
    ("garii", "Gării", (25.6145, 45.6595), "Gara Brașov and Bd. Gării"),
    ("centrul-nou", "Centrul Nou", (25.6045, 45.6535), "the civic centre: Bd. 15 Noiembrie, Bd. Victoriei, Universitate"),
    ("florilor", "Florilor", (25.6235, 45.6540), "between Bd. Alexandru Vlahuță and Calea București"),
    ("calea-bucuresti", "Calea București", (25.6330, 45.6460), "Calea București by the Complexul Mare, Gemenii"),
    ("astra", "Astra", (25.6325, 45.6365), "Bd. Saturn, Str. Neptun, Str. Cometei"),
    ("racadau", "Răcădău", (25.6110, 45.6385), "the lower Răcădău valley, Str. Carpaților side"),
    ("valea-cetatii", "Valea Cetății", (25.6020, 45.6310), "the upper Răcădău valley (blocks of the 1980s)"),
    ("noua", "Noua", (25.6340, 45.6210), "the former village of Noua"),
    ("darste", "Dârste", (25.6500, 45.6100), "the former village of Dârste, on Calea București / DN1"),
    ("poiana-brasov", "Poiana Brașov", (25.5530, 45.5950), "the mountain resort on Postăvarul"),
    ("valea-timisului", "Valea Timișului", (25.5820, 45.5620), "the Timiș valley and Postăvarul's southern slopes, mostly forest"),
]

# The maintenance area of the mountain resort (a hand-drawn polygon round the resort's hotels,
# slopes at the bottom of the ski domain and the access road's last hairpins), clipped to the
# municipality.
POIANA_RESORT = [
    (25.5380, 45.5880), (25.5520, 45.5830), (25.5650, 45.5850), (25.5700, 45.5930),
    (25.5640, 45.6030), (25.5570, 45.6110), (25.5480, 45.6100), (25.5400, 45.6040),
    (25.5360, 45.5960),
]

# Waste collection: two operators, each with a zone made of whole districts.
SANITATION_ZONES = [
    ("zona-1", "Zona 1 de salubrizare (nord-vest)", [
        "stupini", "bartolomeu-nord", "bartolomeu", "brasovechi", "centrul-istoric", "prund",
        "scheii-brasovului", "poiana-brasov", "tractorul", "centrul-nou", "blumana",
    ]),
    ("zona-2", "Zona 2 de salubrizare (sud-est)", [
        "coresi", "triaj", "timis-triaj", "craiter", "garii", "florilor", "calea-bucuresti",
        "astra", "racadau", "valea-cetatii", "noua", "darste", "valea-timisului",
    ]),
]

# Local projection: x = (lon - LON0) * cos(LAT0), y = lat - LAT0 (degrees of latitude).
LON0, LAT0 = 25.6, 45.64
KX = math.cos(math.radians(LAT0))


def project(g):
    return affinity.affine_transform(g, [KX, 0, 0, 1, -LON0 * KX, -LAT0])


def unproject(g):
    return affinity.affine_transform(g, [1 / KX, 0, 0, 1, LON0, LAT0])


def rounded(g):
    """Snap to a 1e-6 degree grid, keeping the geometry valid."""
    g = set_precision(g, 1e-6)
    if not g.is_valid:
        g = make_valid(g)
    return g


def polygons(g) -> list[Polygon]:
    if isinstance(g, Polygon):
        return [g] if not g.is_empty else []
    if isinstance(g, MultiPolygon):
        return list(g.geoms)
    if hasattr(g, "geoms"):
        return [p for part in g.geoms for p in polygons(part)]
    return []


def ring_coords(ring) -> list[list[float]]:
    return [[round(x, 6), round(y, 6)] for x, y in ring.coords]


def geometry_json(g) -> dict:
    polys = [orient(p, 1.0) for p in polygons(g)]
    if len(polys) == 1:
        p = polys[0]
        return {"type": "Polygon",
                "coordinates": [ring_coords(p.exterior)] + [ring_coords(r) for r in p.interiors]}
    return {"type": "MultiPolygon",
            "coordinates": [[ring_coords(p.exterior)] + [ring_coords(r) for r in p.interiors]
                            for p in polys]}


def dumps(obj, indent: int = 0) -> str:
    """JSON with one object key per line but each coordinate pair (and each short list) inline."""
    pad = "  " * indent
    if isinstance(obj, dict):
        items = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {dumps(v, indent + 1).lstrip()}'
                 for k, v in obj.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(isinstance(v, (int, float)) for v in obj):
            return pad + json.dumps(obj)
        if all(isinstance(v, list) and all(isinstance(c, (int, float)) for c in v) for v in obj):
            # a ring: several pairs per line
            pairs = [json.dumps(v) for v in obj]
            lines = [", ".join(pairs[i:i + 4]) for i in range(0, len(pairs), 4)]
            return pad + "[\n" + ",\n".join(pad + "  " + ln for ln in lines) + "\n" + pad + "]"
        return pad + "[\n" + ",\n".join(dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return pad + json.dumps(obj, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(obj)
    assert json.loads(text) == obj
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


def build():
    boundary = Polygon(BOUNDARY)
    if not boundary.is_valid:
        raise SystemExit(f"boundary is not valid: {boundary}")
    boundary = rounded(orient(boundary, 1.0))
    pb = project(boundary)

    for did, name, (lon, lat), _ in DISTRICTS:
        if not boundary.contains(Point(lon, lat)):
            raise SystemExit(f"centre of {did} ({lon}, {lat}) is outside the boundary")

    sites = [project(Point(lon, lat)) for _, _, (lon, lat), _ in DISTRICTS]
    envelope = box(*pb.buffer(0.1).bounds)
    cells = list(voronoi_diagram(MultiPoint(sites), envelope=envelope).geoms)

    # Each site's cell, clipped to the municipality.
    areas = {}
    for (did, _, _, _), site in zip(DISTRICTS, sites):
        cell = next(c for c in cells if c.contains(site))
        areas[did] = cell.intersection(pb)

    # A clipped cell can fall apart where the boundary is concave; a detached piece goes to the
    # district it shares the longest border with, so that every district is one Polygon.
    for did, _, _, _ in DISTRICTS:
        parts = polygons(areas[did])
        if len(parts) <= 1:
            continue
        site = sites[[d[0] for d in DISTRICTS].index(did)]
        keep = next(p for p in parts if p.buffer(1e-12).contains(site))
        areas[did] = keep
        for piece in parts:
            if piece.equals(keep):
                continue
            best, best_len = None, -1.0
            for other, _, _, _ in DISTRICTS:
                if other == did:
                    continue
                shared = piece.boundary.intersection(areas[other].boundary).length
                if shared > best_len:
                    best, best_len = other, shared
            areas[best] = unary_union([areas[best], piece])
            print(f"note: a detached piece of {did} went to {best}")

    features = []
    for did, name, _, _ in DISTRICTS:
        g = rounded(unproject(areas[did]))
        parts = polygons(g)
        if len(parts) != 1:
            raise SystemExit(f"district {did} is not one polygon after rounding")
        features.append({"type": "Feature", "properties": {"id": did, "name": name},
                         "geometry": geometry_json(parts[0])})
    district_geoms = {f["properties"]["id"]: rounded(unproject(areas[f["properties"]["id"]]))
                      for f in features}

    # The published boundary is the union of the rounded districts: the original vertices plus the
    # points where district limits meet it, so that the districts tile it exactly.
    outline = rounded(unary_union(list(district_geoms.values())))
    if not isinstance(outline, Polygon) or outline.interiors:
        raise SystemExit("the districts do not make one polygon without holes")
    if abs(outline.area - boundary.area) > 1e-8:
        raise SystemExit("the districts drifted away from the boundary")
    boundary = outline

    write_json(HERE / "boundary.geojson", {
        "type": "Feature", "properties": {"id": "brasov", "name": "Brașov"},
        "geometry": geometry_json(boundary)})
    write_json(HERE / "districts.geojson", {"type": "FeatureCollection", "features": features})

    for zid, zname, members in SANITATION_ZONES:
        g = rounded(unary_union([district_geoms[m] for m in members]))
        write_json(HERE / "jurisdictions" / f"salubrizare-{zid}.geojson", {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {"id": zid, "name": zname},
                          "geometry": geometry_json(g)}]})

    resort = rounded(Polygon(POIANA_RESORT).intersection(boundary))
    write_json(HERE / "jurisdictions" / "poiana-brasov-statiune.geojson", {
        "type": "FeatureCollection", "features": [{
            "type": "Feature",
            "properties": {"id": "statiunea-poiana-brasov", "name": "Stațiunea Poiana Brașov"},
            "geometry": geometry_json(resort)}]})


if __name__ == "__main__":
    all_ids = [d[0] for d in DISTRICTS]
    assert len(set(all_ids)) == len(all_ids), "duplicate district id"
    zoned = sorted(m for _, _, ms in SANITATION_ZONES for m in ms)
    assert zoned == sorted(all_ids), "every district must be in exactly one sanitation zone"
    build()
