#!/usr/bin/env bash
# Copy the console's npm dependencies (installed by `npm ci` in supervisor/console) into the Python
# package, with their licences: supervisor/console/static/vendor/<package>/. Run by `make console-assets`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NM="$ROOT/supervisor/console/node_modules"
OUT="$ROOT/supervisor/console/static/vendor"
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
