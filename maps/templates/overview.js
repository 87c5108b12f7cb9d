// The overview map (/map): base map and big layers from the app's vector tiles.
// Runs inside an IIFE with `map`, CONFIG, EMBEDDED (name -> folium layer) and esc() defined.
var T = CONFIG;
// Under the embedded layers (overlayPane, 400): base, heat (never clickable), tiled data.
var PANES = {"cg-base": [200, false], "cg-heat": [300, false], "cg-data": [390, true],
             "cg-counts": [610, false],
             "cg-labels": [620, false]};
Object.keys(PANES).forEach(function (name) {
  var pane = map.createPane(name);
  pane.style.zIndex = PANES[name][0];
  if (!PANES[name][1]) { pane.style.pointerEvents = "none"; }
});
var FETCH = {credentials: "same-origin"};
// The app's vector tiles are drawn 512 px wide: the tile (x, y) at map zoom z is the server's
// tile (x, y) of zoom z - 1, asked for with ?px=512 so it holds what zoom z shows. A quarter
// of the requests of 256 px tiles for the same picture.
var TILE_PX = 512;
var tilesLoaded = 0;  // read by tests and the bench
window.cgOverview = {map: map, tiles: function () { return tilesLoaded; }, tilePx: TILE_PX};

function withPx(url) { return url + (url.indexOf("?") < 0 ? "?" : "&") + "px=" + TILE_PX; }

function featureLatLng(coords, geometry, extent, z, size) {
  var p = geometry[0];
  if (Array.isArray(p)) { p = p[0]; }
  var px = L.point(coords.x * size + p.x * size / extent, coords.y * size + p.y * size / extent);
  return map.unproject(px, z);
}

// A VectorGrid.Protobuf that also hands each loaded tile's decoded layers to `onTile`, and
// tells it when the tile goes away, so labels and count numbers follow the tiles.
var DataGrid = L.VectorGrid.Protobuf.extend({
  initialize: function (url, options) {
    L.VectorGrid.Protobuf.prototype.initialize.call(this, url, options);
    this._extra = {};
    this.on("tileunload", function (e) { this._drop(this._tileCoordsToKey(e.coords)); }, this);
  },
  _getVectorTilePromise: function (coords, tileBounds) {
    var self = this;
    var key = this._tileCoordsToKey(coords);
    var size = this.getTileSize().x;
    var fetched = size === 512 ? L.extend(coords.clone(), {z: coords.z - 1}) : coords;
    return L.VectorGrid.Protobuf.prototype._getVectorTilePromise.call(this, fetched, tileBounds)
      .then(function (json) {
        tilesLoaded += 1;
        if (self.options.onTile && self._map) {
          self._drop(key);
          self._extra[key] = self.options.onTile(coords, json, size) || null;
        }
        return json;
      });
  },
  _drop: function (key) {
    var extra = this._extra[key];
    if (extra && this.options.onDrop) { this.options.onDrop(extra); }
    delete this._extra[key];
  },
  onRemove: function (m) {
    Object.keys(this._extra).forEach(this._drop, this);
    L.VectorGrid.Protobuf.prototype.onRemove.call(this, m);
  }
});

function grid(url, options) {
  return new DataGrid(withPx(url), L.extend({
    fetchOptions: FETCH, maxNativeZoom: 20, pane: "cg-data", maxZoom: T.maxZoom,
    tileSize: TILE_PX, minZoom: TILE_PX === 512 ? 1 : 0}, options));
}

// ---- labels: collected from every base-map tile, placed greedily so none touch ------------
var labelCandidates = {};  // tile key -> [{latlng, text, kind, p, z}]
var labelLayer = L.layerGroup().addTo(map);
var relabelTimer = null;
function relabelSoon() {
  if (relabelTimer) { clearTimeout(relabelTimer); }
  relabelTimer = setTimeout(relabel, 60);
}
function labelBox(point, label) {
  var w = label.text.length * 12 + 6;
  var h = 16;
  var left = LANDMARK[label.kind] ? point.x + 6 : point.x - w / 2;
  return L.bounds(L.point(left, point.y - h / 2), L.point(left + w, point.y + h / 2));
}
function relabel() {
  relabelTimer = null;
  labelLayer.clearLayers();
  var z = map.getZoom();
  var all = [];
  Object.keys(labelCandidates).forEach(function (key) {
    labelCandidates[key].forEach(function (l) { if (l.z === z) { all.push(l); } });
  });
  all.sort(function (a, b) { return a.p - b.p || (a.text < b.text ? -1 : 1); });
  var placed = [];
  var seen = {};
  all.forEach(function (l) {
    var box = labelBox(map.latLngToLayerPoint(l.latlng), l);
    // a road named in two neighbouring tiles: once is enough on screen nearby
    var again = seen[l.text];
    if (again && again.some(function (b) {
      return Math.abs(b.min.x - box.min.x) < 200 && Math.abs(b.min.y - box.min.y) < 120;
    })) { return; }
    for (var i = 0; i < placed.length; i++) {
      if (placed[i].intersects(box)) { return; }
    }
    placed.push(box);
    (seen[l.text] = seen[l.text] || []).push(box);
    var landmark = LANDMARK[l.kind];
    L.marker(l.latlng, {
      pane: "cg-labels", interactive: false, keyboard: false,
      icon: L.divIcon({className: "cg-label cg-label-" + (landmark ? "mark" : l.kind),
                       html: esc(l.text), iconSize: null,
                       iconAnchor: landmark ? [-6, 8] : [(box.max.x - box.min.x) / 2, 8]})
    }).addTo(labelLayer);
  });
  window.cgOverview.labels = placed.length;
}
map.on("zoomend moveend", relabelSoon);

var LANDMARK = {school: "#4c78a8", kindergarten: "#72b7b2", hospital: "#e45756",
                metro: "#2f9e44", market: "#f58518", station: "#b279a2"};
var ROAD = {demonstration: "#ffe08a", commercial: "#ffd6ad", managed: "#ffffff",
            other: "#ffffff"};

function roadWidth(z) { return z < 13 ? 1 : z < 15 ? 2.5 : z < 17 ? 5 : 8; }

var baseStyles = {
  district: {weight: 2.5, color: "#6b6b6b", fill: false, opacity: 0.9},
  subdistricts: {weight: 1.4, color: "#9a7bb0", dashArray: "6 4", fill: false},
  communities: {weight: 0.8, color: "#b9a3c9", dashArray: "2 3", fill: false},
  roads: function (props, z) {
    var w = roadWidth(z);
    return [{weight: w + 1.5, color: "#c9c3b8", opacity: 1},
            {weight: w, color: ROAD[props["class"]] || "#ffffff", opacity: 1}];
  },
  landmarks: function (props) {
    return {radius: 4, weight: 1, color: "#ffffff", fill: true, fillOpacity: 1,
            fillColor: LANDMARK[props.kind] || "#777777"};
  },
  labels: []
};

var base;
if (T.base.kind === "city") {
  base = grid(T.base.url, {
    // Canvas, not VectorGrid's default SVG: a first-view base tile holds thousands of road
    // strokes (two each), which as SVG elements cost the page's main thread most of a second.
    pane: "cg-base", interactive: false, rendererFactory: L.canvas.tile,
    vectorTileLayerStyles: baseStyles,
    onTile: function (coords, json, size) {
      var layer = json.layers.labels;
      if (!layer) { return null; }
      var key = coords.x + ":" + coords.y + ":" + coords.z;
      labelCandidates[key] = layer.features.map(function (f) {
        return {latlng: featureLatLng(coords, f.geometry, layer.extent, coords.z, size),
                text: String(f.properties.text), kind: f.properties.kind,
                p: f.properties.p, z: coords.z};
      });
      relabelSoon();
      return key;
    },
    onDrop: function (key) { delete labelCandidates[key]; relabelSoon(); }
  });
} else {
  // A tile mirror (Tianditu on the intranet, AMap): raster tiles, shifted for GCJ-02.
  var C = T.center;
  var Shifted = L.TileLayer.extend({
    _getTilePos: function (coords) {
      var pos = L.TileLayer.prototype._getTilePos.call(this, coords);
      var s = T.base.shift;
      if (!s || !this._map) { return pos; }
      var a = this._map.project(L.latLng(C[0], C[1]), coords.z);
      var b = this._map.project(L.latLng(C[0] + s[1], C[1] + s[0]), coords.z);
      return pos.subtract(b.subtract(a));
    }
  });
  var opts = {pane: "cg-base", subdomains: T.base.subdomains || "abc",
              maxZoom: T.maxZoom, maxNativeZoom: T.base.maxZoom,
              attribution: esc(T.base.attribution)};
  base = new Shifted(T.base.url, opts);
  if (T.base.labelsUrl) { base = L.layerGroup([base, new Shifted(T.base.labelsUrl, opts)]); }
}
base.addTo(map);

// ---- staff layers -------------------------------------------------------------------------
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
  return html + "</table>";
}
function bindPopups(layer, spec, extra) {
  layer.on("click", function (e) {
    var props = (e.layer && e.layer.properties) || {};
    var html = extra ? extra(props) : null;
    L.popup({maxWidth: 320}).setLatLng(e.latlng)
      .setContent(html || popupHtml(spec, props)).openOn(map);
  });
  return layer;
}
function shortCount(n) { return n >= 10000 ? Math.round(n / 1000) + "k" :
                          n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n); }

function pointLayer(spec) {
  // Numbers of the zoom on screen only: Leaflet keeps the old zoom's tiles until the new ones
  // arrive, and their numbers would sit on top of the new ones.
  var groups = [];
  map.on("zoomend", function () {
    var z = map.getZoom();
    groups.forEach(function (g) {
      if (g.z === z && g.live) { g.addTo(map); } else { map.removeLayer(g); }
    });
  });
  return bindPopups(grid(spec.url, {
    interactive: true,
    vectorTileLayerStyles: (function () {
      var s = {};
      s[spec.id] = function (props, z) {
        if (z < spec.detailZoom) { return []; }  // counts are drawn as numbers
        return {radius: z >= 18 ? 5 : 4, weight: 1, color: "#ffffff", fill: true,
                fillOpacity: 0.95,
                fillColor: props.flagged ? spec.flaggedColor : spec.color};
      };
      return s;
    })(),
    onTile: function (coords, json, size) {
      var layer = json.layers[spec.id];
      if (!layer || coords.z >= spec.detailZoom) { return null; }
      var group = L.layerGroup();
      layer.features.forEach(function (f) {
        var n = f.properties.n;
        var cls = "cg-count cg-count-" + spec.id + (f.properties.flagged ? " cg-flagged" : "");
        L.marker(featureLatLng(coords, f.geometry, layer.extent, coords.z, size), {
          pane: "cg-counts", interactive: false, keyboard: false,
          icon: L.divIcon({className: cls, iconSize: [30, 18], iconAnchor: [15, 9],
                           html: esc(shortCount(n))})
        }).addTo(group);
      });
      group.z = coords.z;
      group.live = true;
      if (coords.z === map.getZoom()) { group.addTo(map); }
      groups.push(group);
      return group;
    },
    onDrop: function (group) {
      group.live = false;
      map.removeLayer(group);
      groups.splice(groups.indexOf(group), 1);
    }
  }), spec);
}

function heatColor(d) {
  // complaints per km2 in the bin; the demo district averages about 500
  return d > 12000 ? "#b10026" : d > 6000 ? "#e31a1c" : d > 3000 ? "#fc4e2a" :
         d > 1500 ? "#fd8d3c" : d > 700 ? "#feb24c" : d > 300 ? "#fed976" : null;
}
function casesLayer(spec) {
  var heat = grid(spec.url, {
    pane: "cg-heat", interactive: false, maxZoom: spec.detailZoom - 1,
    rendererFactory: L.canvas.tile,  // never clicked: canvas, like the base map
    vectorTileLayerStyles: {cases: function (props) {
      var color = heatColor(props.density);
      if (!color) { return []; }
      return {stroke: false, fill: true, fillColor: color, fillOpacity: 0.45};
    }}
  });
  var points = bindPopups(grid(spec.url, {
    interactive: true, minZoom: spec.detailZoom,
    vectorTileLayerStyles: {cases: function (props) {
      return {radius: 4, weight: 1, color: "#ffffff", fill: true, fillOpacity: 0.95,
              fillColor: props.flagged ? spec.color : "#888888"};
    }}
  }), spec);
  return L.layerGroup([heat, points]);
}

function gridLayer(spec) {
  return bindPopups(grid(spec.url, {
    interactive: true,
    vectorTileLayerStyles: {grid_cells: function (props, z) {
      if (z < spec.detailZoom) {
        return {weight: 1.2, color: spec.color, opacity: 0.8, fill: true, fillOpacity: 0.02};
      }
      return {weight: z >= 17 ? 1 : 0.6, color: spec.color, opacity: 0.8, fill: true,
              fillColor: spec.color, fillOpacity: 0.03};
    }}
  }), spec, function (props) {
    if (props.cells === undefined) { return null; }
    return '<table class="cg-popup"><tr><th>社区</th><td>' + esc(props.name) +
      "</td></tr><tr><th>单元网格</th><td>" + esc(props.cells) + " 个</td></tr></table>" +
      '<div class="cg-hint">放大到 ' + esc(spec.detailZoom) + " 级查看单元网格</div>";
  });
}

function roadsLayer(spec) {
  return bindPopups(grid(spec.url, {
    interactive: true,
    vectorTileLayerStyles: {roads: function (props, z) {
      return {weight: roadWidth(z) + 1, opacity: 0.85,
              color: spec.classColors[props.street_class] || spec.color};
    }}
  }), spec);
}

var overlays = {};
// The base map goes first: the browser opens six connections to the app, and a first view's
// data tiles queued beside its base tiles made the streets appear late. Data layers shown at
// first view are added once the base map has drawn its first view (or after BASE_FIRST_MS,
// should the base map be slow or down); a layer the person switched in the meantime is left
// as they set it. cgOverview.dataAfter says which came first ("base" or "timeout").
var BASE_FIRST_MS = 4000;
var pending = [];
// Layers made before the base map by another script (the analysis results) wait for it like
// the data layers: on 2 cores their first tiles, cut and drawn beside the base map's, kept the
// streets from showing for 0.2-0.4 s at 1440x900 (analysis_tiles.js).
pending = pending.concat((window.cgAfterBase || []).splice(0));
T.layers.forEach(function (spec) {
  spec.url = T.tileUrl.replace("{layer}", spec.id);
  var layer = spec.kind === "grid" ? gridLayer(spec) : spec.kind === "roads" ? roadsLayer(spec)
            : spec.kind === "cases" ? casesLayer(spec) : pointLayer(spec);
  if (spec.show) { pending.push(layer); }
  overlays[spec.name] = layer;
});
function showPending(why) {
  if (window.cgOverview.dataAfter) { return; }
  window.cgOverview.dataAfter = why;
  pending.splice(0).forEach(function (layer) { layer.addTo(map); });
}
function leaveAsSet(e) {
  pending = pending.filter(function (l) { return l !== e.layer; });
}
map.on("overlayadd overlayremove", leaveAsSet);
var firstBase = base instanceof L.LayerGroup ? base.getLayers()[0] : base;
firstBase.once("load", function () { showPending("base"); });
setTimeout(function () { showPending("timeout"); }, BASE_FIRST_MS);
Object.keys(EMBEDDED).forEach(function (name) { overlays[name] = EMBEDDED[name]; });
var bases = {};
bases[T.base.name] = base;
L.control.layers(bases, overlays, {collapsed: window.innerWidth < 700, position: "topright"}).addTo(map);

// ---- first view ---------------------------------------------------------------------------
// window.cgReady.interactive: the map, its layers and handlers are built (this script ran) and
// the base map's tiles of the first view are drawn; .view: every tiled layer shown at first
// view has drawn its tiles of that view too. Both in ms since navigation start, for the bench
// (bench/pages.py) and the tests; later pans and zooms do not move them.
(function () {
  var ready = window.cgReady = window.cgReady || {};
  var z = map.getZoom();
  var baseTiles = firstBase;  // the base map's first tile layer (above)
  var waiting = [];
  function shownAtFirstView(l) {
    var lo = l.options.minZoom || 0;
    var hi = l.options.maxZoom === undefined ? Infinity : l.options.maxZoom;
    if (l instanceof L.GridLayer && z >= lo && z <= hi) { waiting.push(l); }
  }
  map.eachLayer(shownAtFirstView);
  // Data layers still waiting for the base map (above) count too, and their sub-layers.
  pending.forEach(function (l) {
    if (l instanceof L.LayerGroup) { l.eachLayer(shownAtFirstView); } else { shownAtFirstView(l); }
  });
  function done(layer) {
    if (layer === baseTiles && ready.interactive === undefined) {
      ready.interactive = performance.now();
    }
    waiting = waiting.filter(function (l) { return l !== layer; });
    if (!waiting.length && ready.view === undefined) { ready.view = performance.now(); }
  }
  waiting.slice().forEach(function (l) { l.once("load", function () { done(l); }); });
})();
