// Dispatcher desk (调度台). Wrapped by maps/dispatcher.py in a function that defines `map` (the
// Leaflet map), CONFIG (labels, categories, deadlines, the grid's vector tiles) and DATA
// (district and street outlines and stations, WGS84).
// Every decision is the server's: POST /route finds grid, owner, station and responsible unit,
// POST /cases files the case; this file only asks, draws and lists.
"use strict";
// esc(value) (maps/escaping.py ESC_JS, defined by the wrapper) makes data safe for HTML:
// every value from the server goes through it, or through textContent, never raw.
var labels = CONFIG.labels;
var $ = function (id) { return document.getElementById(id); };

function api(path) { return CONFIG.apiBase + path; }
function label(kind, value) { return (labels[kind] && labels[kind][value]) || value; }
function categoryName(type, code) {
  var found = (CONFIG.categories[type] || []).filter(function (c) { return c.code === code; });
  return found.length ? found[0].name : code;
}
function rows(pairs) {
  return "<table>" + pairs.filter(function (p) { return p[1] !== null && p[1] !== ""; })
    .map(function (p) { return "<tr><th>" + esc(p[0]) + "</th><td>" + p[1] + "</td></tr>"; })
    .join("") + "</table>";
}
var TIME = {timeZone: "Asia/Shanghai", hour12: false, year: "numeric", month: "2-digit",
            day: "2-digit", hour: "2-digit", minute: "2-digit"};
function when(iso) {
  return iso ? new Date(iso).toLocaleString("zh-CN", TIME).replace(/\//g, "-") : "";
}
function span(minutes) {
  minutes = Math.round(Math.abs(minutes));
  if (minutes < 60) { return minutes + " 分钟"; }
  if (minutes < 48 * 60) { return Math.round(minutes / 60) + " 小时"; }
  return Math.round(minutes / 1440) + " 天";
}
function metres(lon1, lat1, lon2, lat2) {
  var r = 6371008.8, rad = Math.PI / 180;
  var dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
  var a = Math.sin(dlat / 2) * Math.sin(dlat / 2) + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) *
    Math.sin(dlon / 2) * Math.sin(dlon / 2);
  return 2 * r * Math.asin(Math.sqrt(a));
}
function setResult(el, cls, text) {
  el.className = "cg-result" + (cls ? " " + cls : "");
  el.textContent = text;
}
function detail(body) {
  if (!body) { return "无响应内容"; }
  if (typeof body.detail === "string") { return body.detail; }
  if (Array.isArray(body.detail)) {
    return body.detail.map(function (d) { return (d.loc || []).join(".") + "：" + d.msg; })
      .join("；");
  }
  return JSON.stringify(body);
}
// Plain same-origin fetch: the login cookie goes along; the server decides who may do what.
function send(method, path, body) {
  var opts = {method: method, headers: {"Accept": "application/json"}};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  return fetch(api(path), opts).then(function (r) {
    return r.json().catch(function () { return null; }).then(function (data) {
      return {status: r.status, body: data};
    });
  });
}
function getJSON(path) {
  return send("GET", path).then(function (res) {
    if (res.status !== 200) { throw new Error(res.status + " " + detail(res.body)); }
    return res.body;
  });
}

// A point from an API row, or null: rows without coordinates must never reach Leaflet, whose
// "Invalid LatLng (NaN, NaN)" would stop this script and leave every list empty.
function latLng(lat, lon) {
  if (lat === null || lon === null || lat === undefined || lon === undefined) { return null; }
  lat = Number(lat);
  lon = Number(lon);
  return isFinite(lat) && isFinite(lon) ? L.latLng(lat, lon) : null;
}
// Fitting a map that has no size yet gives a NaN zoom; such a view waits for a real size.
var pendingView = null;
function fitView(bounds, options) {
  var size = map.getSize();
  if (!bounds || !bounds.isValid || !bounds.isValid()) { return; }
  if (size.x < 2 || size.y < 2) { pendingView = [bounds, options]; return; }
  pendingView = null;
  map.fitBounds(bounds, options);
}
function setView(ll, zoom) {
  var size = map.getSize();
  if (!ll) { return; }
  if (size.x < 2 || size.y < 2) { pendingView = [L.latLngBounds(ll, ll), {maxZoom: zoom}]; return; }
  map.setView(ll, zoom, {animate: false});
}
// Scroll the form panel (not the page: the body must stay put under the app shell) so that
// `el` is in sight.
function bringIntoView(el) {
  var panel = $("cg-panel"), top = el.offsetTop, bottom = top + el.offsetHeight;
  if (top < panel.scrollTop || bottom > panel.scrollTop + panel.clientHeight) {
    panel.scrollTop = Math.max(0, top - 8);
  }
}
var store = {
  get: function (key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } },
  set: function (key, value) { try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ } }
};

$("cg-title").textContent = CONFIG.title;

// ---- phone and tablet: one bottom sheet with tabs, the map always above it ------------------
var narrow = window.matchMedia("(max-width: 1023px)");
function showSheet(name) {
  ["panel", "side", "map"].forEach(function (n) {
    document.body.classList.toggle("cg-sheet-" + n, n === name);
  });
  document.querySelectorAll("#cg-sheet-tabs button").forEach(function (b) {
    b.setAttribute("aria-selected", b.getAttribute("data-sheet") === name ? "true" : "false");
  });
  relayout();
}
function relayout() {
  // The map's box changes with the sheet: Leaflet must measure it again.
  map.invalidateSize({animate: false});
  if (pendingView && map.getSize().x > 1 && map.getSize().y > 1) {
    fitView(pendingView[0], pendingView[1]);
  }
}
document.querySelectorAll("#cg-sheet-tabs button").forEach(function (b) {
  b.addEventListener("click", function () { showSheet(b.getAttribute("data-sheet")); });
});
showSheet("panel");
window.addEventListener("resize", relayout);
if (narrow.addEventListener) { narrow.addEventListener("change", relayout); }

// ---- the form ---------------------------------------------------------------------------------
CONFIG.crsOrder.forEach(function (crs) {
  var o = document.createElement("option");
  o.value = crs;
  o.textContent = labels.crs[crs];
  $("cg-crs").appendChild(o);
});
// WGS84 unless this user chose another: a GPS point read as BD-09 lands ~1 km away.
var CRS_KEY = "citygrid.dispatch.crs";
$("cg-crs").value = labels.crs[store.get(CRS_KEY)] ? store.get(CRS_KEY) : CONFIG.crsDefault;
$("cg-crs").addEventListener("change", function () { store.set(CRS_KEY, $("cg-crs").value); });
function fillCategories(type, selected) {
  var select = $("cg-cat-code");
  select.innerHTML = "";
  (CONFIG.categories[type] || []).forEach(function (c) {
    var o = document.createElement("option");
    o.value = c.code;
    o.textContent = c.code + " " + c.name;
    select.appendChild(o);
  });
  if (selected) { select.value = selected; }
}
$("cg-cat-type").value = CONFIG.defaults.category_type;
fillCategories(CONFIG.defaults.category_type, CONFIG.defaults.category_code);
$("cg-cat-type").addEventListener("change", function () {
  fillCategories($("cg-cat-type").value);
  showDeadline();
});
["cg-cat-code", "cg-urgency", "cg-area"].forEach(function (id) {
  $(id).addEventListener("change", showDeadline);
});

// ---- background -------------------------------------------------------------------------------
// Panes fix the stacking whatever order layers are added in: the filled district at the
// bottom, the grid canvas above it, answers (grid, cases) in the overlay pane, the point on top.
map.createPane("cg-base").style.zIndex = 350;
map.createPane("cg-grids").style.zIndex = 380;
map.createPane("cg-pick").style.zIndex = 450;
var overlays = {};
overlays["区界"] = L.geoJSON(DATA.districts, {
  pane: "cg-base", interactive: false, style: {color: "#444", weight: 2.5, dashArray: "6 4", fillColor: "#f6f1e7",
                              fillOpacity: 1}
}).addTo(map);
overlays["街道"] = L.geoJSON(DATA.subdistricts, {
  pane: "cg-base", interactive: false, style: {color: "#8d6e63", weight: 1.5, fill: false}
}).addTo(map);
// Eleven thousand small polygons come as vector tiles of the public grid collection (/ogc),
// drawn on canvas from GRID_MIN_ZOOM on; the page embeds none of them.
var gridStyle = {color: "#3182bd", weight: 0.6, opacity: 0.7, fill: false};
var gridStyles = {};
gridStyles[CONFIG.gridTileLayer] = gridStyle;
var grids = L.vectorGrid.protobuf(CONFIG.gridTiles, {
  pane: "cg-grids", interactive: false, minZoom: CONFIG.gridMinZoom, maxZoom: 22,
  rendererFactory: L.canvas.tile, vectorTileLayerStyles: gridStyles
});
overlays["单元网格"] = grids;
function showGrids() {
  if (map.getZoom() >= CONFIG.gridMinZoom) {
    if (!map.hasLayer(grids)) { grids.addTo(map); }
  } else if (map.hasLayer(grids)) {
    map.removeLayer(grids);
  }
}
map.on("zoomend", showGrids);
var stationsById = {};
overlays["社区城管工作站"] = L.geoJSON(DATA.stations, {
  filter: function (f) {
    return !!(f.geometry && latLng(f.geometry.coordinates[1], f.geometry.coordinates[0]));
  },
  pointToLayer: function (f, ll) {
    return L.circleMarker(ll, {radius: 4, color: "#1b5e20", weight: 1, fillColor: "#43a047",
                               fillOpacity: 0.9});
  },
  onEachFeature: function (f, l) {
    stationsById[f.properties.id] = f;
    l.bindTooltip(esc(f.properties.name) + "（" + esc(f.properties.phone) + "）");
  }
}).addTo(map);

var highlight = L.featureGroup().addTo(map);
var nearbyLayer = L.featureGroup().addTo(map);
var pickLayer = L.featureGroup().addTo(map);
overlays["所选网格"] = highlight;
overlays["附近未结案件"] = nearbyLayer;
L.control.layers(null, overlays, {collapsed: true, position: "topright"}).addTo(map);
L.control.scale({imperial: false}).addTo(map);

var legend = L.control({position: "bottomright"});
legend.onAdd = function () {
  var div = L.DomUtil.create("div", "cg-legend");
  div.innerHTML =
    '<div><i style="background:#ffcc80;border-color:#e65100"></i>所选网格</div>' +
    '<div><i style="background:#1a73e8;border-radius:50%"></i>投诉位置</div>' +
    '<div><i style="background:#43a047;border-radius:50%"></i>城管工作站</div>' +
    '<div><i style="background:#ff7043;border-radius:50%"></i>附近未结案件</div>' +
    '<div><i style="background:none;border:1px solid #3182bd"></i>单元网格（放大后显示）</div>';
  return div;
};
legend.addTo(map);

// ---- deadlines (from the city's deadline_rules, computed on the server) ---------------------
function deadlineText(step) {
  var key = [$("cg-cat-type").value, $("cg-cat-code").value, $("cg-urgency").value,
             $("cg-area").value].join(":");
  var steps = CONFIG.deadlines[key];
  if (!steps || !steps[step]) { return "未配置"; }
  return steps[step].duration + " " + label("unit", steps[step].unit) +
    (steps[step].note ? "（" + steps[step].note + "）" : "");
}
function showDeadline() {
  var box = $("cg-deadline");
  if (!lastRoute) { box.innerHTML = ""; return; }
  box.innerHTML = "<b>办理时限</b>（" + esc(label("urgency", $("cg-urgency").value)) + "、" +
    esc(label("area", $("cg-area").value)) + "）" +
    ["dispatch", "handle", "verify"].map(function (s) {
      return '<div data-step="' + s + '">' + esc(label("step", s)) + "：" +
        esc(deadlineText(s)) + "</div>";
    }).join("");
}

// ---- locate -----------------------------------------------------------------------------------
var lastRoute = null, lastInput = null;
function readInput() {
  var x = parseFloat($("cg-x").value), y = parseFloat($("cg-y").value);
  if (!isFinite(x) || !isFinite(y)) { return null; }
  var component = $("cg-component").value.trim();
  return {x: x, y: y, crs: $("cg-crs").value, category_type: $("cg-cat-type").value,
          category_code: $("cg-cat-code").value, component_code: component || null};
}
function showRoute(r) {
  var owner = r.owner, st = r.station;
  var flags = "";
  if (r.snapped) {
    flags += '<span class="cg-flag">界外就近 ' + esc(r.snap_distance_m) + " 米</span>";
  }
  if (owner.fallback) { flags += '<span class="cg-flag">属地兜底</span>'; }
  var boundary = r.near_boundary
    ? '<span class="cg-flag" data-near-boundary="true">靠近网格边界</span> 邻近网格 ' +
      esc(r.nearest_other_grid) + "（" + esc(Math.round(r.other_grid_distance_m)) + " 米）"
    : "否";
  $("cg-route").innerHTML = rows([
    ["单元网格", '<span id="cg-grid-code" class="cg-grid-code">' + esc(r.grid_code) +
                 "</span>" + flags],
    ["社区", esc(r.community_name) + "（" + esc(r.community_code) + "）"],
    ["网格责任人", '<span id="cg-owner">' + esc(owner.name) + "</span>（" +
                   esc(label("owner_kind", owner.kind)) + "）"],
    ["联系电话", owner.phone ? '<a href="tel:' + esc(owner.phone) + '">' + esc(owner.phone) +
                               "</a>" : "无"],
    ["城管工作站", st ? '<span id="cg-station">' + esc(st.name) + "</span>，" +
                         esc(Math.round(st.distance_m)) + " 米，电话 " + esc(st.phone) : "无"],
    ["责任单位", '<span id="cg-unit">' + esc(r.responsible_unit) + "</span>"],
    ["依据", esc(r.responsibility_rule_zh || r.responsibility_rule)],
    ["关联部件", r.component ? esc(r.component.code) + "（" + esc(r.component.owner) + "，" +
                               esc(Math.round(r.component.distance_m)) + " 米）" : ""],
    ["摊群点", r.stall_zone ? esc(r.stall_zone.name) + "（" + esc(r.stall_zone.operator) + "）"
                            : ""],
    ["边界", boundary],
    ["WGS84", esc(Number(r.lon).toFixed(6) + ", " + Number(r.lat).toFixed(6)) +
              (r.raw_crs !== "wgs84" ? "（由 " + esc(label("raw_crs", r.raw_crs)) + " 换算）" : "")]
  ]);
  var box = $("cg-route");
  box.setAttribute("data-grid", r.grid_code);
  box.setAttribute("data-owner", owner.name);
}
function drawRoute(r) {
  highlight.clearLayers();
  pickLayer.clearLayers();
  var at = latLng(r.lat, r.lon);
  if (!at) { return Promise.resolve(); }
  var point = L.circleMarker(at, {radius: 8, color: "#fff", weight: 2,
                                              fillColor: "#1a73e8", fillOpacity: 1,
                                              pane: "cg-pick"})
    .bindTooltip("投诉位置").addTo(pickLayer);
  var st = r.station && stationsById[r.station.code], sll = null;
  if (st) {
    sll = [st.geometry.coordinates[1], st.geometry.coordinates[0]];
    L.polyline([at, sll], {color: "#2e7d32", weight: 2, dashArray: "5 5",
                                       interactive: false, pane: "cg-pick"}).addTo(pickLayer);
    L.circleMarker(sll, {radius: 8, color: "#1b5e20", weight: 2, fillColor: "#66bb6a",
                         fillOpacity: 1, pane: "cg-pick"})
      .bindTooltip(esc(st.properties.name), {permanent: true, direction: "top", offset: [0, -6]})
      .addTo(pickLayer);
  }
  // The routing answer has no geometry: the grid's outline comes from the layer API.
  return getJSON("/layers/grid_cells/items/" + encodeURIComponent(r.grid_code))
    .then(function (feature) {
      var outline = L.geoJSON(feature, {
        interactive: false,
        style: {color: "#e65100", weight: 4, fillColor: "#ffcc80", fillOpacity: 0.55}
      }).addTo(highlight);
      var bounds = outline.getBounds().extend(point.getLatLng());
      // The code sits above the grid, so the grid and the point stay visible.
      L.marker([bounds.getNorth(), bounds.getCenter().lng], {
        interactive: false, keyboard: false,
        icon: L.divIcon({className: "cg-grid-label", html: esc(r.grid_code),
                         iconSize: null, iconAnchor: [70, 30]})
      }).addTo(pickLayer);
      var view = bounds.pad(1.5);
      // A station a short walk away is worth showing too; a far one only gets the line.
      if (st && r.station.distance_m <= 600) { view.extend(L.latLng(sll)); }
      fitView(view, {maxZoom: 18, padding: [40, 40], animate: false});
      showGrids();
      $("cg-route").setAttribute("data-highlighted", r.grid_code);
    });
}
function caseLine(c, extra) {
  var late = c.current_due_at && new Date(c.current_due_at) < new Date();
  return '<span class="cg-no">' + esc(c.case_no) + "</span> " +
    esc(categoryName(c.category_type, c.category_code)) + " · " +
    esc(label("case_status", c.status)) + (extra || "") +
    '<br><span class="cg-meta">网格 ' + esc(c.grid_code) + ' · 期限 <span class="cg-due">' +
    esc(c.current_due_at ? when(c.current_due_at) : "未定") + "</span>" +
    (late ? '<span class="cg-overdue"> 已超期 ' +
            esc(span((new Date() - new Date(c.current_due_at)) / 60000)) + "</span>" : "") +
    (c.supervised ? ' · <span class="cg-overdue">重点督办</span>' : "") + "</span>";
}
function showNearby(r) {
  var m = CONFIG.nearbyM;
  var dlat = m / 111320, dlon = m / (111320 * Math.cos(r.lat * Math.PI / 180));
  var bbox = [r.lon - dlon, r.lat - dlat, r.lon + dlon, r.lat + dlat]
    .map(function (v) { return v.toFixed(6); }).join(",");
  return getJSON("/cases?limit=1000&bbox=" + bbox).then(function (cases) {
    var open = cases.filter(function (c) {
      return c.is_open && latLng(c.lat, c.lon);
    }).map(function (c) {
      c.distance_m = metres(r.lon, r.lat, c.lon, c.lat);
      return c;
    }).filter(function (c) { return c.distance_m <= m; });
    open.sort(function (a, b) { return a.distance_m - b.distance_m; });
    nearbyLayer.clearLayers();
    var ol = $("cg-nearby");
    ol.innerHTML = "";
    $("cg-nearby-title").className = "";
    $("cg-nearby-title").textContent = "附近 " + m + " 米内未结案件（" + open.length + " 件）";
    if (!open.length) {
      ol.innerHTML = '<li class="cg-empty">无</li>';
    }
    open.slice(0, 8).forEach(function (c) {
      var marker = L.circleMarker(latLng(c.lat, c.lon), {radius: 6, color: "#bf360c", weight: 1,
                                                   fillColor: "#ff7043", fillOpacity: 0.9})
        .bindPopup(caseLine(c)).addTo(nearbyLayer);
      var li = document.createElement("li");
      li.className = "cg-nearby-case";
      li.setAttribute("data-case-id", c.id);
      li.innerHTML = caseLine(c, " · " + esc(Math.round(c.distance_m)) + " 米");
      li.addEventListener("click", function () { marker.openPopup(); });
      ol.appendChild(li);
    });
    ol.setAttribute("data-count", open.length);
  });
}
function locate(opts) {
  opts = opts || {};
  var input = readInput(), box = $("cg-status");
  if (!input) {
    setResult(box, "bad", "请输入经纬度，或在地图上单击选点");
    return Promise.resolve();
  }
  setResult(box, "", "正在定位…");
  $("cg-case").disabled = true;
  $("cg-route").removeAttribute("data-highlighted");
  $("cg-nearby").removeAttribute("data-count");
  return send("POST", "/route", input).then(function (res) {
    if (res.status !== 200) {
      lastRoute = null;
      $("cg-route").innerHTML = "";
      ["data-grid", "data-owner", "data-highlighted"].forEach(function (a) {
        $("cg-route").removeAttribute(a);
      });
      showDeadline();
      setResult(box, "bad", "定位失败：" + detail(res.body));
      return;
    }
    lastRoute = res.body;
    lastInput = input;
    showRoute(lastRoute);
    showDeadline();
    $("cg-case").disabled = false;
    setResult(box, "ok", "已定位到网格 " + lastRoute.grid_code);
    setResult($("cg-file-result"), "", "");
    if (opts.address) { setAddress(opts.address, "search"); }
    if (narrow.matches) { bringIntoView(box); }  // the sheet is short: show the answer
    return Promise.all([drawRoute(lastRoute), showNearby(lastRoute),
                        opts.address ? null : fillAddress(lastRoute)]);
  }).catch(function (err) { setResult(box, "bad", "请求失败：" + err.message); });
}
$("cg-form").addEventListener("submit", function (ev) {
  ev.preventDefault();
  if (addrSource !== "typed") { addrSource = "none"; }
  locate();
});

// ---- one search box: address, place, road, community, grid code, case number, coordinates ----
// While typing (debounced), suggestions come from GET /geocode/suggest; an app without it (404)
// gets them from GET /geocode plus what the page can read itself (coordinates, grid codes, case
// numbers). Enter or 查找 runs the full geocoder, whose candidates say how they matched.
var GEO_LEVELS = {doorplate: "门牌", interpolated: "门牌内插", intersection: "路口",
                  landmark: "地标", road: "道路", community: "社区"};
var GEO_KINDS = {address: "地址", place: "地点", road: "道路", community: "社区", grid: "网格",
                 "case": "案件", coordinates: "坐标"};
var COORDS = /^\s*(-?\d{1,3}(?:\.\d+)?)\s*[,，\s]\s*(-?\d{1,3}(?:\.\d+)?)\s*$/;
var GRID_CODE = /^\d{14,15}$/;  // 370102 + street, community and cell digits
var CASE_NO = /^(?:[A-Za-z]{1,4}\d{6,}|\d{16,20})$/;  // LX20251123... or 2026...
var SUGGEST_MS = 180;
var suggestSeq = 0, suggestTimer = null, addrSource = "none";
var suggestApi = !!CONFIG.services.suggest;
function setAddress(text, source) {
  $("cg-addr-text").value = text || "";
  $("cg-addr-text").setAttribute("data-source", source);
  addrSource = source;
}
$("cg-addr-text").addEventListener("input", function () {
  addrSource = "typed";
  $("cg-addr-text").setAttribute("data-source", "typed");
});
function pickPoint(x, y, crs, address) {
  $("cg-x").value = Number(x).toFixed(7);
  $("cg-y").value = Number(y).toFixed(7);
  // The select shows the CRS of the numbers in the fields; the remembered choice is untouched.
  $("cg-crs").value = crs;
  return locate({address: address});
}
function pickCandidate(c) { return pickPoint(c.lon, c.lat, "wgs84", c.name); }
function closeSuggestions() {
  $("cg-address").setAttribute("aria-expanded", "false");
}
function pickSuggestion(sg) {
  suggestSeq += 1;  // answers still on their way are stale now
  clearTimeout(suggestTimer);
  var list = $("cg-geo-list");
  list.innerHTML = "";
  list.removeAttribute("data-count");
  closeSuggestions();
  if (narrow.matches) { $("cg-address").blur(); }  // the phone keyboard hides the map
  setResult($("cg-geo-status"), "ok", "已选：" + sg.label);
  if (sg.kind === "case" && sg.case_no) {
    return showCase(sg.case_no).then(function (c) {
      if (c && latLng(c.lat, c.lon)) { return pickPoint(c.lon, c.lat, "wgs84", null); }
    });
  }
  if (sg.kind === "grid" && !latLng(sg.lat, sg.lon)) {
    return gridPoint(sg.grid_code).then(function (ll) {
      if (ll) { return pickPoint(ll.lng, ll.lat, "wgs84", null); }
      setResult($("cg-geo-status"), "bad", "未找到网格 " + sg.grid_code);
    });
  }
  if (sg.raw) { return pickPoint(sg.raw.x, sg.raw.y, sg.raw.crs, null); }
  if (!latLng(sg.lat, sg.lon)) {
    setResult($("cg-geo-status"), "bad", "“" + sg.label + "”没有坐标");
    return Promise.resolve();
  }
  var named = sg.kind !== "coordinates" && sg.kind !== "grid";
  return pickPoint(sg.lon, sg.lat, "wgs84", named ? sg.label : null);
}
function gridPoint(code) {
  // A point inside the grid: the middle of its outline from the layer API.
  return getJSON("/layers/grid_cells/items/" + encodeURIComponent(code)).then(function (f) {
    var b = L.geoJSON(f).getBounds();
    return b.isValid() ? b.getCenter() : null;
  }).catch(function () { return null; });
}
// What the page recognises without asking: coordinates in the selected CRS, a grid code, a
// case number.
function ownSuggestions(q) {
  var found = [], m = COORDS.exec(q), crs = $("cg-crs").value;
  if (m) {
    var x = parseFloat(m[1]), y = parseFloat(m[2]);
    if (Math.abs(x) < Math.abs(y)) { var t = x; x = y; y = t; }  // "36.66, 117.03" too
    found.push({kind: "coordinates", label: x + ", " + y + "（" + label("crs", crs) + "）",
                raw: {x: x, y: y, crs: crs}, lon: null, lat: null});
  }
  if (GRID_CODE.test(q)) {
    found.push({kind: "grid", label: "网格 " + q, grid_code: q, lon: null, lat: null});
  }
  if (CASE_NO.test(q)) {
    found.push({kind: "case", label: "案件 " + q, case_no: q, lon: null, lat: null});
  }
  return found;
}
function fallbackSuggestions(q) {
  var own = ownSuggestions(q);
  if (own.length) { return Promise.resolve(own); }
  return getJSON("/geocode?route=false&limit=6&q=" + encodeURIComponent(q)).then(function (r) {
    return r.candidates.map(function (c) {
      return {kind: c.level === "road" ? "road" : c.level === "community" ? "community"
                    : c.level === "landmark" ? "place" : "address",
              label: c.name, lon: c.lon, lat: c.lat, grid_code: c.grid_code, level: c.level,
              score: c.score, case_no: null};
    });
  });
}
function fetchSuggestions(q) {
  if (!suggestApi) { return fallbackSuggestions(q); }
  var path = "/geocode/suggest?limit=8&crs=" + encodeURIComponent($("cg-crs").value) +
    "&q=" + encodeURIComponent(q);
  return send("GET", path).then(function (res) {
    if (res.status === 404 || res.status === 405) {
      suggestApi = false;  // not in this app (yet): the page answers itself from now on
      return fallbackSuggestions(q);
    }
    if (res.status !== 200) { throw new Error(res.status + " " + detail(res.body)); }
    var own = ownSuggestions(q).filter(function (o) {
      return !res.body.suggestions.some(function (sg) { return sg.kind === o.kind; });
    });
    return res.body.suggestions.concat(own);
  });
}
function showSuggestions(items) {
  var list = $("cg-geo-list");
  list.innerHTML = "";
  list.setAttribute("data-count", items.length);
  list.setAttribute("data-mode", "suggest");
  items.forEach(function (sg, i) {
    var li = document.createElement("li");
    li.setAttribute("role", "option");
    li.setAttribute("data-kind", sg.kind);
    if (sg.level) { li.setAttribute("data-level", sg.level); }
    li.id = "cg-sg-" + i;
    var extra = [sg.level ? GEO_LEVELS[sg.level] || sg.level : "",
                 sg.grid_code ? "网格 " + sg.grid_code : ""].filter(Boolean).join(" · ");
    li.innerHTML = '<span class="cg-kind">' + esc(GEO_KINDS[sg.kind] || sg.kind) + "</span>" +
      esc(sg.label) + (extra ? " <small>" + esc(extra) + "</small>" : "");
    li.addEventListener("click", function () { pickSuggestion(sg); });
    list.appendChild(li);
  });
  $("cg-address").setAttribute("aria-expanded", items.length ? "true" : "false");
}
function suggest() {
  var q = $("cg-address").value.trim(), seq = ++suggestSeq;
  if (q.length < 2) {
    $("cg-geo-list").innerHTML = "";
    $("cg-geo-list").removeAttribute("data-count");
    closeSuggestions();
    return;
  }
  fetchSuggestions(q).then(function (items) {
    if (seq !== suggestSeq) { return; }  // the box changed meanwhile
    showSuggestions(items);
    setResult($("cg-geo-status"), "", items.length ? "" : "无匹配，按回车用完整地址查找");
  }).catch(function (err) {
    if (seq === suggestSeq) { setResult($("cg-geo-status"), "bad", "提示失败：" + err.message); }
  });
}
$("cg-address").addEventListener("input", function () {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(suggest, SUGGEST_MS);
});
$("cg-address").addEventListener("keydown", function (ev) {
  var items = Array.prototype.slice.call(document.querySelectorAll("#cg-geo-list li"));
  var at = items.findIndex(function (li) { return li.classList.contains("cg-current"); });
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    if (!items.length) { return; }
    ev.preventDefault();
    at = ev.key === "ArrowDown" ? (at + 1) % items.length : (at + items.length - 1) % items.length;
    items.forEach(function (li, i) { li.classList.toggle("cg-current", i === at); });
    $("cg-address").setAttribute("aria-activedescendant", items[at].id || "");
  } else if (ev.key === "Enter" && at >= 0) {
    ev.preventDefault();
    items[at].click();
  } else if (ev.key === "Escape") {
    $("cg-geo-list").innerHTML = "";
    closeSuggestions();
  }
});
function searchAddress() {
  var q = $("cg-address").value.trim(), list = $("cg-geo-list"), box = $("cg-geo-status");
  suggestSeq += 1;
  clearTimeout(suggestTimer);
  list.innerHTML = "";
  list.removeAttribute("data-count");
  list.setAttribute("data-mode", "search");
  if (!q) { setResult(box, "bad", "请输入地址、网格编码、案件编号或坐标"); return; }
  var own = ownSuggestions(q);
  if (own.length) { pickSuggestion(own[0]); return; }
  setResult(box, "", "正在查找…");
  var seq = suggestSeq;
  getJSON("/geocode?route=false&limit=5&q=" + encodeURIComponent(q)).then(function (r) {
    if (seq !== suggestSeq) { return; }
    setResult(box, r.confident ? "ok" : "bad", r.message);
    list.setAttribute("data-count", r.candidates.length);
    r.candidates.forEach(function (c, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.innerHTML = "<b>" + esc(c.name) + "</b> " + esc(GEO_LEVELS[c.level] || c.level) +
        " · " + esc(c.score.toFixed(2)) + "<br><small>" + esc(c.why) + "</small>";
      li.setAttribute("data-level", c.level);
      li.addEventListener("click", function () { pickCandidate(c); });
      list.appendChild(li);
      if (i === 0 && r.confident) { pickCandidate(c); }
    });
  }).catch(function (err) { setResult(box, "bad", "查找失败：" + err.message); });
}
$("cg-geo-form").addEventListener("submit", function (ev) { ev.preventDefault(); searchAddress(); });
map.on("click", function (e) {
  $("cg-x").value = e.latlng.lng.toFixed(6);
  $("cg-y").value = e.latlng.lat.toFixed(6);
  $("cg-crs").value = "wgs84";
  addrSource = "click";  // a new point: its address replaces whatever was there
  locate();
});
// Reverse geocoding: the address of the located point, unless the operator typed one.
function fillAddress(r) {
  if (addrSource === "typed") { return Promise.resolve(); }
  var path = "/geocode/reverse?crs=wgs84&lon=" + Number(r.lon).toFixed(7) + "&lat=" +
    Number(r.lat).toFixed(7);
  return getJSON(path).then(function (a) {
    if (lastRoute === r && addrSource !== "typed") { setAddress(a.address, "reverse"); }
  }).catch(function () { /* the address stays empty; the case can be filed without it */ });
}
$("cg-clear").addEventListener("click", function () {
  lastRoute = null;
  lastInput = null;
  ["cg-x", "cg-y", "cg-component"].forEach(function (id) { $(id).value = ""; });
  setAddress("", "none");
  ["cg-route", "cg-nearby", "cg-deadline"].forEach(function (id) { $(id).innerHTML = ""; });
  ["data-grid", "data-owner", "data-highlighted"].forEach(function (a) {
    $("cg-route").removeAttribute(a);
  });
  $("cg-nearby").removeAttribute("data-count");
  $("cg-nearby-title").className = "cg-hidden";
  $("cg-case").disabled = true;
  highlight.clearLayers();
  nearbyLayer.clearLayers();
  pickLayer.clearLayers();
  setResult($("cg-status"), "", "");
  setResult($("cg-file-result"), "", "");
});

// ---- file and dispatch (立案派遣) ----------------------------------------------------------
// POST /cases with the address text; an app whose case model has no `address` yet (422 naming
// it) gets the address at the head of the description instead.
function createCase(body) {
  return send("POST", "/cases", body).then(function (res) {
    var refused = res.status === 422 && body.address !== undefined &&
      JSON.stringify(res.body || "").indexOf("address") >= 0;
    if (!refused) { return res; }
    var plain = Object.assign({}, body);
    delete plain.address;
    plain.description = ("【事发地址】" + body.address + "\n" + body.description).slice(0, 4000);
    return send("POST", "/cases", plain);
  });
}
function caseNoOf(id) {
  return getJSON("/cases/" + encodeURIComponent(id)).then(function (c) { return c.case_no; })
    .catch(function () { return null; });
}
function fileCase() {
  var box = $("cg-file-result");
  if (!lastRoute || !lastInput) { setResult(box, "bad", "请先定位"); return; }
  // The raw point as typed, with its CRS: the case keeps both, the server converts.
  var body = {category_type: lastInput.category_type, category_code: lastInput.category_code,
              channel: $("cg-channel").value, x: lastInput.x, y: lastInput.y,
              crs: lastInput.crs, description: $("cg-desc").value.trim(),
              urgency: $("cg-urgency").value, area_type: $("cg-area").value};
  var address = $("cg-addr-text").value.trim();
  if (address) { body.address = address; }
  $("cg-file").disabled = true;
  setResult(box, "", "正在立案…");
  var created = null;
  createCase(body).then(function (res) {
    if (res.status !== 201) { throw new Error("未立案：" + detail(res.body)); }
    created = res.body;
    box.setAttribute("data-case-id", created.id);
    box.setAttribute("data-case-no", created.case_no);
    addNewCase(created);
    showTab("new");
    return send("POST", "/cases/" + created.id + "/actions/file", {});
  }).then(function (res) {
    if (res.status !== 200) { throw new Error("案件 " + created.case_no + " 已登记，立案失败：" +
                                              detail(res.body)); }
    return send("POST", "/cases/" + created.id + "/actions/dispatch", {});
  }).then(function (res) {
    if (res.status !== 200) { throw new Error("案件 " + created.case_no + " 已立案，派遣失败：" +
                                              detail(res.body)); }
    var c = res.body;
    addNewCase(c);
    return (c.repeat_of && !c.supervised ? caseNoOf(c.repeat_of) : Promise.resolve(null))
      .then(function (repeatNo) {
        var text = "已立案派遣：" + c.case_no + "，网格 " + c.grid_code + "，处置期限 " +
          when(c.due_at) + (c.due_approximate ? "（节假日数据外，按周一至周五估算）" : "");
        if (c.supervised) { text += "；重复投诉，已列入重点督办"; }
        else if (c.repeat_of) {
          // People cite case numbers, never the database's ids.
          text += "；疑似重复投诉" + (repeatNo ? "（同类案件 " + repeatNo + "）" : "");
        }
        setResult(box, "ok", text);
        box.setAttribute("data-status", c.status);
        refreshLists();
        if (lastRoute) { showNearby(lastRoute); }
      });
  }).catch(function (err) {
    setResult(box, "bad", err.message);
  }).then(function () {
    $("cg-file").disabled = false;
    // The answer sits below the form: bring it into view, on a phone too.
    bringIntoView(box);
  });
}
$("cg-file").addEventListener("click", fileCase);

// ---- case lists ---------------------------------------------------------------------------------
var caseMarker = L.featureGroup().addTo(map);
function showCase(ref) {
  // ref: the case number (what people cite) or, for older list rows, the id.
  return getJSON("/cases/" + encodeURIComponent(ref)).then(function (c) {
    caseMarker.clearLayers();
    var at = latLng(c.lat, c.lon);
    if (!at) {
      setResult($("cg-status"), "bad", "案件 " + c.case_no + " 没有坐标，无法在地图上显示");
      return c;
    }
    L.circleMarker(at, {radius: 9, color: "#b71c1c", weight: 2, fillColor: "#ef5350",
                        fillOpacity: 0.9})
      .bindPopup(caseLine(c) + "<br>" + esc(c.description)).addTo(caseMarker).openPopup();
    setView(at, Math.max(map.getZoom(), 17));
    return c;
  }).catch(function (err) {
    setResult($("cg-status"), "bad", "案件读取失败：" + err.message);
  });
}
function listItem(ol, html, caseId, attrs) {
  var li = document.createElement("li");
  li.innerHTML = html;
  Object.keys(attrs || {}).forEach(function (k) { li.setAttribute(k, attrs[k]); });
  if (caseId) { li.addEventListener("click", function () { showCase(caseId); }); }
  ol.appendChild(li);
  return li;
}
function empty(ol, text) { ol.innerHTML = '<li class="cg-empty">' + esc(text) + "</li>"; }
// 新建: cases filed here, newest first, shown the moment POST /cases answers (the 待办 list is
// ordered by deadline and a new case may sit far down it). GET /cases/recent, where the app
// has it, adds the ones filed elsewhere.
var newCases = [];
function addNewCase(c) {
  newCases = [c].concat(newCases.filter(function (o) { return o.id !== c.id; })).slice(0, 50);
  showNewCases();
}
function showNewCases() {
  var ol = $("cg-new-list");
  ol.innerHTML = "";
  if (!newCases.length) { empty(ol, "本页尚未立案"); }
  newCases.forEach(function (c) {
    listItem(ol, caseLine(c), c.id, {"class": "cg-new-case", "data-case-id": c.id,
                                          "data-case-no": c.case_no});
  });
  ol.setAttribute("data-count", newCases.length);
  $("cg-new-badge").textContent = newCases.length ? String(newCases.length) : "";
}
function loadRecent() {
  if (!CONFIG.services.recent) { return Promise.resolve(); }
  return send("GET", "/cases/recent?limit=20").then(function (res) {
    if (res.status !== 200 || !Array.isArray(res.body)) { return; }
    var known = {};
    newCases.forEach(function (c) { known[c.id] = true; });
    newCases = newCases.concat(res.body.filter(function (c) { return !known[c.id]; }))
      .sort(function (a, b) { return new Date(b.reported_at) - new Date(a.reported_at); })
      .slice(0, 50);
    showNewCases();
  }).catch(function () { /* no recent-cases API: the page's own list stays */ });
}
function loadOpen() {
  // GET /cases sorts by the current step's deadline (none last), so open cases come first.
  return getJSON("/cases?limit=300").then(function (cases) {
    var ol = $("cg-open-list");
    ol.innerHTML = "";
    var open = cases.filter(function (c) { return c.is_open; }).slice(0, 100);
    if (!open.length) { empty(ol, "暂无未结案件"); }
    open.forEach(function (c) {
      var late = c.current_due_at && new Date(c.current_due_at) < new Date();
      listItem(ol, caseLine(c), c.id, {"class": "cg-open-case" + (late ? " cg-late" : ""),
                                       "data-case-id": c.id,
                                       "data-due": c.current_due_at || ""});
    });
    ol.setAttribute("data-count", open.length);
  });
}
function loadOverdue() {
  return getJSON("/cases/overdue").then(function (rows_) {
    var ol = $("cg-overdue-list");
    ol.innerHTML = "";
    $("cg-overdue-count").textContent = "超期未结案件共 " + rows_.length + " 件" +
      (rows_.length > 100 ? "，显示超期最久的 100 件" : "") + "。";
    if (!rows_.length) { empty(ol, "暂无超期案件"); }
    rows_.slice(0, 100).forEach(function (o) {
      listItem(ol, '<span class="cg-no">' + esc(o.case_no) + "</span> " +
        esc(categoryName(o.category_type, o.category_code)) + " · " +
        esc(label("step", o.step)) + '环节<br><span class="cg-meta">网格 ' +
        esc(o.grid_code) + " · 期限 " + esc(when(o.due_at)) +
        '<span class="cg-overdue"> 超期 ' + esc(span(o.overdue_by_minutes)) + "</span></span>",
        o.case_id, {"class": "cg-overdue-case", "data-case-id": o.case_id});
    });
    ol.setAttribute("data-count", rows_.length);
  });
}
function loadSupervised() {
  return getJSON("/cases/supervised").then(function (groups) {
    var ol = $("cg-supervised-list");
    ol.innerHTML = "";
    if (!groups.length) { empty(ol, "暂无重点督办案件"); }
    groups.forEach(function (g) {
      listItem(ol, "<b>" + esc(categoryName(g.category_type, g.category_code)) + "</b> 重复 " +
        esc(g.case_count) + " 次，未结 " + esc(g.open_count) +
        ' 件<br><span class="cg-meta">网格 ' +
        esc(g.grid_codes.join("、")) + " · " + esc(when(g.first_reported_at)) + " 至 " +
        esc(when(g.last_reported_at)) + "</span>",
        g.case_ids[g.case_ids.length - 1],
        {"class": "cg-supervised-group", "data-group-id": g.group_id,
         "data-case-ids": g.case_ids.join(",")});
    });
    ol.setAttribute("data-count", groups.length);
  });
}
function refreshLists() {
  return Promise.all([loadOpen(), loadOverdue(), loadSupervised(), loadRecent()]).catch(function (err) {
    setResult($("cg-status"), "bad", "案件列表读取失败：" + err.message);
  });
}
function showTab(name) {
  document.querySelectorAll(".cg-tab").forEach(function (t) {
    t.classList.toggle("cg-active", t.getAttribute("data-tab") === name);
    t.setAttribute("aria-selected", t.getAttribute("data-tab") === name ? "true" : "false");
  });
  ["new", "open", "overdue", "supervised"].forEach(function (p) {
    $("cg-pane-" + p).classList.toggle("cg-hidden", p !== name);
  });
}
document.querySelectorAll(".cg-tab").forEach(function (tab) {
  tab.addEventListener("click", function () { showTab(tab.getAttribute("data-tab")); });
});
showNewCases();
$("cg-refresh").addEventListener("click", refreshLists);

if (CONFIG.bounds) {
  fitView(L.latLngBounds(CONFIG.bounds), {padding: [10, 10], animate: false});
}
showGrids();
var listsLoaded = refreshLists();

// ---- live updates: GET /events/cases (server-sent events) refreshes the lists -----------------
var live = {events: 0, open: false};
if (CONFIG.services.events && window.EventSource) {
  var source = new EventSource(api("/events/cases")), liveTimer = null;
  source.addEventListener("open", function () { live.open = true; });
  source.addEventListener("case", function (ev) {
    live.events += 1;
    try { live.last = JSON.parse(ev.data); } catch (e) { live.last = null; }
    // A burst of changes (a batch import) reloads the lists once.
    clearTimeout(liveTimer);
    liveTimer = setTimeout(function () {
      refreshLists();
      if (lastRoute) { showNearby(lastRoute); }
    }, 800);
  });
  // EventSource reconnects by itself after a dropped connection.
  source.addEventListener("error", function () { live.open = false; });
  window.addEventListener("pagehide", function () { source.close(); });
}
window.cgDispatch = {map: map, highlight: highlight, nearby: nearbyLayer, grids: grids,
                     lists: listsLoaded, live: live, route: function () { return lastRoute; }};

// window.cgReady (ms since navigation start; bench/pages.py and the tests read it, as on the
// overview): interactive when the map, its handlers and the case lists of the first view are
// there; view when the grid tiles shown at first view are drawn too.
(function () {
  var ready = window.cgReady = window.cgReady || {};
  listsLoaded.then(function () {
    ready.interactive = performance.now();
    if (!map.hasLayer(grids) || !grids.isLoading()) { ready.view = ready.interactive; return; }
    grids.once("load", function () { ready.view = performance.now(); });
  });
})();
