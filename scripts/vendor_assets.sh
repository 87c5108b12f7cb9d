#!/usr/bin/env bash
# Rebuild api/static/vendor/ from pinned npm packages so map pages work on isolated networks.
#
# Run only when updating a front-end dependency; the app never needs node at runtime.
# After a version bump here, update the URL table in maps/assets.py to match folium, then run
# `pytest tests/maps/test_maps_offline.py tests/layers/test_map_page.py`.
#
# Usage: scripts/vendor_assets.sh            (needs npm and the project venv with folium)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/api/static/vendor"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# Pinned to what folium's default_js/default_css and the plugins we use reference.
LEAFLET=1.9.3
JQUERY=3.7.1
BOOTSTRAP=5.2.2
BOOTSTRAP3=3.4.1             # only its Glyphicons (folium.Icon's default prefix)
AWESOME_MARKERS=2.0.5        # folium references 2.0.2 on cdnjs; npm has 2.0.0/2.0.4/2.0.5
FONTAWESOME=6.2.0
MARKERCLUSTER=1.1.0
LEAFLET_DRAW=1.0.2           # for the planner page (folium.plugins.Draw references 1.0.2)
SWAGGER_UI=5.35.0            # the API docs page (/docs), which FastAPI loads from a CDN by default
VECTORGRID=1.3.0             # vector tiles (MVT) on the pages; folium.plugins.VectorGridProtobuf

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch <npm spec> <dir name>: npm pack + extract into $WORK/<dir name>
    local spec="$1" name="$2"
    (cd "$WORK" && npm pack "$spec" --silent >/dev/null 2>&1 && mkdir -p "$name" \
        && tar xzf ./*.tgz -C "$name" --strip-components=1 && rm ./*.tgz)
}

put() {  # put <src file> <dest relative to $DEST>
    mkdir -p "$(dirname "$DEST/$2")"
    cp "$1" "$DEST/$2"
}

rm -rf "$DEST"
mkdir -p "$DEST"

fetch "leaflet@$LEAFLET" leaflet
put "$WORK/leaflet/dist/leaflet.js" leaflet/leaflet.js
put "$WORK/leaflet/dist/leaflet.css" leaflet/leaflet.css
for f in layers.png layers-2x.png marker-icon.png marker-icon-2x.png marker-shadow.png; do
    put "$WORK/leaflet/dist/images/$f" "leaflet/images/$f"
done
put "$WORK/leaflet/LICENSE" leaflet/LICENSE

fetch "jquery@$JQUERY" jquery
put "$WORK/jquery/dist/jquery.min.js" jquery/jquery.min.js
put "$WORK/jquery/LICENSE.txt" jquery/LICENSE.txt

fetch "bootstrap@$BOOTSTRAP" bootstrap
put "$WORK/bootstrap/dist/css/bootstrap.min.css" bootstrap/css/bootstrap.min.css
# Reboot alone: what citygrid's pages link instead of the whole stylesheet (maps/lean_assets.py)
put "$WORK/bootstrap/dist/css/bootstrap-reboot.min.css" bootstrap/css/bootstrap-reboot.min.css
put "$WORK/bootstrap/dist/js/bootstrap.bundle.min.js" bootstrap/js/bootstrap.bundle.min.js
put "$WORK/bootstrap/LICENSE" bootstrap/LICENSE

# folium links a Bootstrap 3 glyphicons stylesheet; cut just the Glyphicons rules out of
# Bootstrap 3 so a page never loads two Bootstraps.
fetch "bootstrap@$BOOTSTRAP3" bootstrap3
mkdir -p "$DEST/glyphicons/css"
awk '/^@font-face/ {on=1} on {print} on && /^\.glyphicon-menu-up:before/ {last=1}
     last && /^}/ {exit}' "$WORK/bootstrap3/dist/css/bootstrap.css" \
    > "$DEST/glyphicons/css/glyphicons.css"
for f in "$WORK"/bootstrap3/dist/fonts/glyphicons-halflings-regular.*; do
    put "$f" "glyphicons/fonts/$(basename "$f")"
done
put "$WORK/bootstrap3/LICENSE" glyphicons/LICENSE

fetch "leaflet.awesome-markers@$AWESOME_MARKERS" awesome
put "$WORK/awesome/dist/leaflet.awesome-markers.js" leaflet.awesome-markers/leaflet.awesome-markers.js
put "$WORK/awesome/dist/leaflet.awesome-markers.css" \
    leaflet.awesome-markers/leaflet.awesome-markers.css
for f in markers-soft.png markers-soft@2x.png markers-shadow.png markers-shadow@2x.png; do
    put "$WORK/awesome/dist/images/$f" "leaflet.awesome-markers/images/$f"
done
put "$WORK/awesome/LICENSE" leaflet.awesome-markers/LICENSE

fetch "@fortawesome/fontawesome-free@$FONTAWESOME" fontawesome
put "$WORK/fontawesome/css/all.min.css" fontawesome-free/css/all.min.css
for f in "$WORK"/fontawesome/webfonts/*.woff2 "$WORK"/fontawesome/webfonts/*.ttf; do
    put "$f" "fontawesome-free/webfonts/$(basename "$f")"
done
put "$WORK/fontawesome/LICENSE.txt" fontawesome-free/LICENSE.txt

fetch "leaflet.markercluster@$MARKERCLUSTER" markercluster
for f in leaflet.markercluster.js MarkerCluster.css MarkerCluster.Default.css; do
    put "$WORK/markercluster/dist/$f" "leaflet.markercluster/$f"
done
put "$WORK/markercluster/MIT-LICENCE.txt" leaflet.markercluster/MIT-LICENCE.txt

fetch "leaflet-draw@$LEAFLET_DRAW" draw
put "$WORK/draw/dist/leaflet.draw.js" leaflet-draw/leaflet.draw.js
put "$WORK/draw/dist/leaflet.draw.css" leaflet-draw/leaflet.draw.css
for f in spritesheet.png spritesheet-2x.png spritesheet.svg; do
    put "$WORK/draw/dist/images/$f" "leaflet-draw/images/$f"
done
# leaflet-draw ships no LICENSE file in its npm package; its package.json says MIT.

fetch "swagger-ui-dist@$SWAGGER_UI" swagger
for f in swagger-ui-bundle.js swagger-ui.css LICENSE; do
    put "$WORK/swagger/$f" "swagger-ui/$f"
done

fetch "leaflet.vectorgrid@$VECTORGRID" vectorgrid
put "$WORK/vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js" \
    leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js
# leaflet.vectorgrid ships no LICENSE file in its npm package; its package.json says Beerware.

# folium's HeatMap loads folium's own patched leaflet-heat (Leaflet.heat PR #78), not the npm
# leaflet.heat 0.2.0; take it from the installed folium so it matches the Python side.
FOLIUM_DIR="$("$PYTHON" -c 'import folium, os; print(os.path.dirname(folium.__file__))')"
FOLIUM_VERSION="$("$PYTHON" -c 'import folium; print(folium.__version__)')"
put "$FOLIUM_DIR/templates/leaflet_heat.min.js" folium/leaflet_heat.min.js
# folium.Icon(angle=n) adds class fa-rotate-n; generate the rules rather than fetch them.
for n in $(seq 0 359); do
    printf '.fa-rotate-%d{transform:rotate(%ddeg)}\n' "$n" "$n"
done > "$DEST/folium/leaflet.awesome.rotate.min.css"

cat > "$DEST/VERSIONS.txt" <<EOF
# Front-end assets served from /static/vendor; rebuilt by scripts/vendor_assets.sh.
# Source: npm registry (npm pack) unless noted. Do not edit by hand.
leaflet                         $LEAFLET
jquery                          $JQUERY
bootstrap                       $BOOTSTRAP
glyphicons (bootstrap)          $BOOTSTRAP3   Glyphicons rules + fonts cut from dist/css/bootstrap.css
leaflet.awesome-markers         $AWESOME_MARKERS   (folium references 2.0.2 on cdnjs; not on npm)
@fortawesome/fontawesome-free   $FONTAWESOME   (css/all.min.css, webfonts woff2 + ttf)
leaflet.markercluster           $MARKERCLUSTER
leaflet-draw                    $LEAFLET_DRAW   (dist only; for the planner page)
swagger-ui-dist                 $SWAGGER_UI   (bundle + css; for /docs)
leaflet.vectorgrid              $VECTORGRID   (bundled.min.js: VectorGrid.Protobuf with its pbf decoder)
folium/leaflet_heat.min.js      folium $FOLIUM_VERSION   (copied from the installed folium package)
folium/leaflet.awesome.rotate.min.css   generated (fa-rotate-0 .. fa-rotate-359)
EOF

du -sh "$DEST"
