#!/bin/sh
# Copies the pinned Leaflet, Leaflet.markercluster and uPlot (package-lock.json) into
# console/vendor/{leaflet,leaflet.markercluster,uplot}/.
# The copied files are committed, so building or running the server never needs npm
# and the console loads nothing from the internet. Run this only to change a version:
#   cd dashboards && sh vendor.sh
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
src=node_modules/leaflet
dst=console/vendor/leaflet
rm -rf "$dst"
mkdir -p "$dst/images"
cp "$src/dist/leaflet.js" "$src/dist/leaflet.css" "$dst/"
cp "$src"/dist/images/* "$dst/images/"
cp "$src/LICENSE" "$dst/LICENSE"
version=$(node -p "require('./$src/package.json').version")
printf 'Leaflet %s, copied from the npm package by dashboards/vendor.sh. BSD-2-Clause, see LICENSE.\n' "$version" > "$dst/VERSION"
echo "vendored leaflet $version into $dst"

src=node_modules/leaflet.markercluster
dst=console/vendor/leaflet.markercluster
rm -rf "$dst"
mkdir -p "$dst"
# The cluster icons are drawn by the console (app.js, style.css): only the animations' stylesheet
# is used, the default icons' one is copied for reference.
cp "$src/dist/leaflet.markercluster.js" "$src/dist/MarkerCluster.css" "$src/dist/MarkerCluster.Default.css" "$dst/"
cp "$src/MIT-LICENCE.txt" "$dst/LICENSE"
version=$(node -p "require('./$src/package.json').version")
printf 'Leaflet.markercluster %s, copied from the npm package by dashboards/vendor.sh. MIT, see LICENSE.\n' "$version" > "$dst/VERSION"
echo "vendored leaflet.markercluster $version into $dst"

src=node_modules/uplot
dst=console/vendor/uplot
rm -rf "$dst"
mkdir -p "$dst"
cp "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$dst/"
cp "$src/LICENSE" "$dst/LICENSE"
version=$(node -p "require('./$src/package.json').version")
printf 'uPlot %s, copied from the npm package by dashboards/vendor.sh. MIT, see LICENSE.\n' "$version" > "$dst/VERSION"
echo "vendored uplot $version into $dst"
