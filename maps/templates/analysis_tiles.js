// Analysis result layers from /tiles/analysis/... (maps/analysis_tiles.py).
// Runs inside a function with `map`, LAYERS (layer configs) and esc() defined; returns the
// layers by part, which the overview script puts into its layer control.
var tilesLoaded = 0;  // read by tests and the bench
var byPart = {};

function colorOf(spec, props) {
  if (spec.kind === "heat") {
    for (var i = 0; i < spec.heat.length; i++) {
      if (props.density >= spec.heat[i][0]) { return spec.heat[i][1]; }
    }
    return null;
  }
  if (spec.colorBy) {
    var c = spec.colors[String(props[spec.colorBy])];
    if (c) { return c; }
  }
  return spec.color;
}

function styleFor(spec) {
  return function (props, z) {
    var color = colorOf(spec, props);
    if (spec.kind === "heat") {
      return color ? {stroke: false, fill: true, fillColor: color, fillOpacity: 0.5} : [];
    }
    if (spec.kind === "line") {
      return {color: color, opacity: 0.9, weight: 3 + Math.min(5, (props.dark_m || 0) / 20)};
    }
    if (spec.kind === "point") {
      return {radius: z >= 16 ? 7 : 6, weight: 1, color: "#333333", fill: true,
              fillColor: color, fillOpacity: 0.9};
    }
    var style = {weight: 0.6, color: spec.colorBy ? "#666666" : color, opacity: 0.9, fill: true,
                 fillColor: color, fillOpacity: spec.colorBy ? 0.7 : 0.45};
    if (props.review) {  // unreachable, or a walk over 3x the straight line: check on site
      style.color = "#000000"; style.weight = 2; style.dashArray = "4 3";
    }
    return style;
  };
}

function popupHtml(spec, props) {
  var html = '<table class="cg-popup">';
  spec.fields.forEach(function (f) {
    if (!(f[0] in props)) { return; }
    var v = props[f[0]];
    var labels = spec.values[f[0]];
    if (labels && labels[v] !== undefined) { v = labels[v]; }
    if (v === true) { v = "是"; } else if (v === false) { v = "否"; }
    html += "<tr><th>" + esc(f[1]) + "</th><td>" + esc(v) + "</td></tr>";
  });
  html += "</table>";
  if (spec.detailZoom && map.getZoom() < spec.detailZoom) {
    html += '<div class="cg-hint">放大到 ' + esc(spec.detailZoom) + " 级查看详细数据</div>";
  }
  return html;
}

// 512 px tiles: the tile at (x, y) of map zoom z covers the 256 px tile (x, y) of zoom z - 1,
// so that is the one fetched: a quarter of the requests, the same detail on screen.
var Counted = L.VectorGrid.Protobuf.extend({
  _getVectorTilePromise: function (coords, tileBounds) {
    var self = this;
    var up = {x: coords.x, y: coords.y, z: coords.z - 1};
    return L.VectorGrid.Protobuf.prototype._getVectorTilePromise.call(this, up, tileBounds)
      .then(function (json) {
        tilesLoaded += 1;
        // The loaded features' properties, for openAll() (tests show every popup).
        var layer = json.layers[self.options.part];
        self._loaded = self._loaded || {};
        self._loaded[self._tileCoordsToKey(coords)] = layer ? layer.features.map(
          function (f) { return f.properties; }) : [];
        return json;
      });
  }
});

LAYERS.forEach(function (spec) {
  var styles = {};
  styles[spec.part] = styleFor(spec);
  var layer = new Counted(spec.url, {
    part: spec.part, fetchOptions: {credentials: "same-origin"}, tileSize: 512, minZoom: 1,
    maxNativeZoom: 20, maxZoom: 20,
    interactive: true, rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles
  });
  layer.on("click", function (e) {
    var props = (e.layer && e.layer.properties) || {};
    L.popup({maxWidth: 320}).setLatLng(e.latlng).setContent(popupHtml(spec, props)).openOn(map);
  });
  // Shown once the base map has drawn its first view (maps/templates/overview.js takes these
  // in the same tick and adds them with its own data layers), so the streets do not wait
  // behind a first view of result tiles.
  if (spec.show) { (window.cgAfterBase = window.cgAfterBase || []).push(layer); }
  byPart[spec.part] = layer;
});

// Each legend box belongs to one layer: shown while that layer is on the map.
function syncLegends() {
  document.querySelectorAll(".cg-legend[data-part]").forEach(function (box) {
    var layer = byPart[box.getAttribute("data-part")];
    box.style.display = layer && map.hasLayer(layer) ? "" : "none";
  });
}
map.on("layeradd layerremove", syncLegends);
syncLegends();
// A page without the overview's base map still shows its results.
setTimeout(function () {
  (window.cgAfterBase || []).splice(0).forEach(function (l) { l.addTo(map); });
}, 0);
// On a phone the method box starts folded: open, it would cover most of the map.
if (window.innerWidth < 700) {
  document.querySelectorAll(".cg-about[open]").forEach(function (d) { d.removeAttribute("open"); });
}
// Open the popup of every loaded feature of the layers on the map, one after the other, and
// return their texts: how the tests check what a popup shows (a click needs a known pixel).
function openAll() {
  var texts = [];
  LAYERS.forEach(function (spec) {
    var layer = byPart[spec.part];
    if (!map.hasLayer(layer)) { return; }
    Object.keys(layer._loaded || {}).forEach(function (key) {
      layer._loaded[key].forEach(function (props) {
        var popup = L.popup().setLatLng(map.getCenter()).setContent(popupHtml(spec, props));
        popup.openOn(map);
        texts.push(popup.getElement().innerText);
        map.closePopup(popup);
      });
    });
  });
  return texts;
}
window.cgAnalysis = {map: map, layers: byPart, openAll: openAll,
                     tiles: function () { return tilesLoaded; }};
return byPart;
