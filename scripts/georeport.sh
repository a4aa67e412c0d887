#!/usr/bin/env bash
# Installs the Open311 GeoReport v2 client `georeport` (PyPI) into a cached virtualenv and prints
# the path of its Python: an outside reader of Dispecer's /open311/v2/ in the e2e tests.
# Idempotent: a virtualenv that already has the pinned version is reused as it is.
set -euo pipefail

VERSION="${DISPECER_GEOREPORT_VERSION:-0.3.1}"
VENV="${DISPECER_GEOREPORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dispecer/georeport-$VERSION}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('georeport') != '$VERSION')" 2>/dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi

echo "installing georeport $VERSION into $VENV" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "georeport==$VERSION" >&2
echo "$VENV/bin/python"
