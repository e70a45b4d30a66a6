#!/usr/bin/env bash
# The console's npm dependencies, at the versions of supervisor/console/package-lock.json, copied with
# their licences into the Python package: supervisor/console/static/vendor/<package>/. `npm ci` runs
# in a temporary directory, so no node_modules ever lands in the package. Run by `make console-assets`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PKG="$ROOT/supervisor/console"
OUT="$PKG/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp "$PKG/package.json" "$PKG/package-lock.json" "$WORK/"
(cd "$WORK" && npm ci --no-audit --no-fund --ignore-scripts)
NM="$WORK/node_modules"
rm -rf "$OUT"
mkdir -p "$OUT/leaflet/images" "$OUT/supercluster"
cp "$NM/leaflet/dist/leaflet.js" "$NM/leaflet/dist/leaflet.css" "$NM/leaflet/LICENSE" "$OUT/leaflet/"
cp "$NM"/leaflet/dist/images/*.png "$OUT/leaflet/images/"
# supercluster's UMD bundle includes kdbush (its one dependency): both licences ship
cp "$NM/supercluster/dist/supercluster.min.js" "$NM/supercluster/LICENSE" "$OUT/supercluster/"
cp "$NM/kdbush/LICENSE" "$OUT/supercluster/LICENSE.kdbush"
for pkg in leaflet supercluster kdbush; do
  node -e "const p=require('$NM/$pkg/package.json'); console.log(p.name+' '+p.version+' '+p.license)"
done > "$OUT/VERSIONS"
echo "console-assets: vendored into $OUT:"; cat "$OUT/VERSIONS"
