#!/usr/bin/env bash
# Installs schemathesis (PyPI) into a cached virtualenv and prints the path of its `st` command.
# Idempotent: a virtualenv that already has the pinned version is reused as it is.
#
#   scripts/schemathesis.sh            # prints e.g. /root/.cache/dispecer/schemathesis-4.x/bin/st
#
# DISPECER_SCHEMATHESIS_VENV overrides where the virtualenv lives.
set -euo pipefail

VERSION="${DISPECER_SCHEMATHESIS_VERSION:-4.32.5}"
VENV="${DISPECER_SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dispecer/schemathesis-$VERSION}"

if [ -x "$VENV/bin/st" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$VERSION')" 2>/dev/null; then
    echo "$VENV/bin/st"
    exit 0
fi

echo "installing schemathesis $VERSION into $VENV" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
"$VENV/bin/st" --version >&2
echo "$VENV/bin/st"
