// Public convenience map. Wrapped by maps/public.py in a function that defines `map` (the
// Leaflet map), CONFIG (base map, kinds, time) and DATA (facilities, stations, zones, outlines,
// already in the base map's datum). "Open now" was decided on the server for CONFIG.at.
"use strict";
// esc(value) (maps/escaping.py ESC_JS, defined by the wrapper) makes data safe for HTML:
// every value from the server goes through it, or through textContent, never raw.
var $ = function (id) { return document.getElementById(id); };
var kinds = {};
CONFIG.kinds.forEach(function (k) { kinds[k.id] = k; });

function rows(pairs) {
  return '<table class="cg-popup">' + pairs.filter(function (p) { return p[1] !== ""; })
    .map(function (p) { return "<tr><th>" + esc(p[0]) + "</th><td>" + p[1] + "</td></tr>"; })
    .join("") + "</table>";
}
function phone(p) { return p ? '<a href="tel:' + esc(p) + '">' + esc(p) + "</a>" : ""; }
function openTag(open) {
  if (open === true) { return '<span class="cg-open-tag">营业中</span>'; }
  if (open === false) { return '<span class="cg-closed-tag">未营业</span>'; }
  return "";
}

// ---- background -----------------------------------------------------------------------------
var backgrounds = CONFIG.tiles.map(function (t) {
  return L.tileLayer(t.url, {subdomains: t.subdomains || "abc", attribution: t.attribution,
                             maxZoom: t.maxZoom}).addTo(map);
});
var offline = CONFIG.tiles.length === 0;
var outlines = L.geoJSON(DATA.districts, {
  interactive: false,
  style: offline ? {color: "#7a6a55", weight: 2, fillColor: "#f6f1e7", fillOpacity: 1}
                 : {color: "#7a6a55", weight: 2, dashArray: "6 4", fill: false}
}).addTo(map);
if (outlines.getLayers().length) {
  map.fitBounds(outlines.getBounds(), {padding: [10, 10], animate: false});
}

// ---- places ---------------------------------------------------------------------------------
function icon(kind, open) {
  var k = kinds[kind];
  return L.divIcon({className: "", iconSize: [28, 28], iconAnchor: [14, 14],
                    html: '<div class="cg-pin cg-kind-' + esc(kind) +
                          (open === false ? " closed" : "") + '" style="background:' +
                          esc(k.color) + '">' + esc(k.glyph) + "</div>"});
}
var items = [];
// A phone shows a place's details in the bottom sheet (a popup would cover the small map);
// a wider screen opens them in a popup at the place.
function narrowScreen() { return window.innerWidth < 900; }
function showDetails(item) {
  if (!narrowScreen()) {
    item.marker.openPopup();
    return;
  }
  $("cg-detail-body").innerHTML = item.popup;
  $("cg-detail").hidden = false;
  $("cg-sheet").classList.add("cg-has-detail");
  $("cg-sheet").scrollTop = 0;
}
function add(kind, place, popup, polygon) {
  var marker = L.marker([place.lat, place.lon], {icon: icon(kind, place.open_now),
                                                  title: place.name});
  var item = {kind: kind, id: place.id, name: place.name, open: place.open_now,
              marker: marker, polygon: polygon || null, popup: popup};
  marker.bindPopup(popup);
  // On a phone the sheet replaces the popup: close it as it opens.
  marker.on("popupopen", function () {
    if (narrowScreen()) { marker.closePopup(); showDetails(item); }
  });
  if (polygon) {
    polygon.on("click", function (e) {
      if (narrowScreen()) { showDetails(item); } else {
        L.popup().setLatLng(e.latlng).setContent(popup).openOn(map);
      }
    });
  }
  items.push(item);
  return item;
}
$("cg-detail-close").addEventListener("click", function () {
  $("cg-detail").hidden = true;
  $("cg-sheet").classList.remove("cg-has-detail");
});
// Zoom buttons where there is a mouse and room; phones pinch.
if (!narrowScreen()) {
  L.control.zoom({position: "topright", zoomInTitle: "放大", zoomOutTitle: "缩小"}).addTo(map);
}
DATA.facilities.forEach(function (f) {
  add(f.kind, f, "<b>" + esc(f.name) + "</b>" + rows([
    ["类型", esc(f.kind_zh)], ["地址", esc(f.address)], ["开放时间", esc(f.opening_hours)],
    ["电话", phone(f.phone)], ["状态", openTag(f.open_now)]]));
});
DATA.stations.forEach(function (s) {
  add("station", s, "<b>" + esc(s.name) + "</b>" + rows([
    ["地址", esc(s.address)], ["电话", phone(s.phone)], ["开放时间", esc(s.opening_hours)]]));
});
DATA.zones.forEach(function (z) {
  var polygon = L.geoJSON(z.geometry, {style: {color: kinds.stall_zone.color, weight: 2,
                                               fillOpacity: z.open_now ? 0.35 : 0.1}});
  add("stall_zone", z, "<b>" + esc(z.name) + "</b>" + rows([
    ["类型", esc(z.zone_type_zh)], ["时间", esc(z.schedule_zh)], ["摊位", esc(z.capacity) + " 个"],
    ["管理方", esc(z.operator)], ["状态", openTag(z.open_now)]]), polygon);
});

var cluster = L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 50,
                                    spiderfyOnMaxZoom: true, disableClusteringAtZoom: 18,
                                    chunkedLoading: true});
var zoneShapes = L.layerGroup();
map.addLayer(zoneShapes);
map.addLayer(cluster);

// ---- filters --------------------------------------------------------------------------------
// Chips select forwards: none chosen shows every kind ("全部"); tapping a kind shows only the
// chosen ones, tapping it again drops it (back to all when none is left).
var chosen = {};
function anyChosen() { return Object.keys(chosen).some(function (k) { return chosen[k]; }); }
function paintChips() {
  var all = !anyChosen();
  Array.prototype.forEach.call($("cg-kinds").querySelectorAll(".cg-chip"), function (chip) {
    var on = chip.dataset.kind === "all" ? all : !!chosen[chip.dataset.kind];
    chip.classList.toggle("on", on);
    chip.setAttribute("aria-pressed", String(on));
    chip.style.background = on ? chip.dataset.color : "";
    chip.style.borderColor = on ? "transparent" : chip.dataset.color;
  });
}
function chipButton(id, text, color) {
  var chip = document.createElement("button");
  chip.type = "button";
  chip.className = "cg-chip";
  chip.dataset.kind = id;
  chip.dataset.color = color;
  chip.textContent = text;
  $("cg-kinds").appendChild(chip);
  return chip;
}
chipButton("all", "全部", "#37474f").addEventListener("click", function () {
  chosen = {};
  paintChips();
  refresh();
});
CONFIG.kinds.forEach(function (k) {
  chipButton(k.id, k.label, k.color).addEventListener("click", function () {
    chosen[k.id] = !chosen[k.id];
    paintChips();
    refresh();
  });
  var option = document.createElement("option");
  option.value = k.id;
  option.textContent = "最近的" + k.label;
  $("cg-near-kind").appendChild(option);
});
$("cg-open-now").addEventListener("change", refresh);

function visible(item) {
  var kindShown = !anyChosen() || !!chosen[item.kind];
  return kindShown && !($("cg-open-now").checked && item.open === false);
}
paintChips();
// The chip row scrolls sideways on a phone: a fading edge with an arrow says there is more,
// until the row is scrolled to its end.
function chipCue() {
  var row = $("cg-kinds");
  var more = row.scrollWidth - row.clientWidth - row.scrollLeft > 4;
  $("cg-chips-wrap").classList.toggle("cg-more", more);
}
$("cg-kinds").addEventListener("scroll", chipCue, {passive: true});
window.addEventListener("resize", chipCue);
chipCue();
$("cg-chips-more").addEventListener("click", function () {
  $("cg-kinds").scrollBy({left: $("cg-kinds").clientWidth * 0.7, behavior: "smooth"});
});
function refresh() {
  cluster.clearLayers();
  zoneShapes.clearLayers();
  var markers = [];
  items.forEach(function (item) {
    if (!visible(item)) { return; }
    markers.push(item.marker);
    if (item.polygon) { zoneShapes.addLayer(item.polygon); }
  });
  cluster.addLayers(markers);
  $("cg-count").textContent = "显示 " + markers.length + " 处";
}
$("cg-title").textContent = CONFIG.title;
$("cg-time").textContent = (CONFIG.atFixed ? "时间 " : "更新于 ") + CONFIG.at.replace("T", " ");
refresh();

// ---- nearest ---------------------------------------------------------------------------------
var nearLayer = L.layerGroup().addTo(map);
var picking = false;
function status(text) { $("cg-status").textContent = text; }
function findItem(kind, id) {
  for (var i = 0; i < items.length; i++) {
    if (items[i].kind === kind && items[i].id === id) { return items[i]; }
  }
  return null;
}
function lookup(lon, lat, crs) {
  var kind = $("cg-near-kind").value;
  var query = "lon=" + lon + "&lat=" + lat + "&kind=" + encodeURIComponent(kind) +
              "&crs=" + crs + "&display_crs=" + CONFIG.crs;
  if (CONFIG.atFixed) { query += "&at=" + encodeURIComponent(CONFIG.at); }
  if ($("cg-open-now").checked) { query += "&open_now=true"; }
  status("正在查找…");
  fetch(CONFIG.apiBase + "/public/nearest?" + query).then(function (r) {
    return r.json().then(function (body) { return {ok: r.ok, body: body}; });
  }).then(function (res) {
    if (!res.ok) { status("查找失败：" + (res.body.message_zh || "请稍后再试")); return; }
    show(res.body);
  }).catch(function () { status("网络错误，请稍后再试"); });
}
function show(result) {
  nearLayer.clearLayers();
  var origin = result.origin_display || result.origin;
  var here = L.circleMarker([origin[1], origin[0]], {radius: 8, color: "#fff", weight: 3,
                                                     fillColor: "#1565c0", fillOpacity: 1});
  nearLayer.addLayer(here);
  var list = $("cg-results");
  list.innerHTML = "";
  var bounds = L.latLngBounds([here.getLatLng()]);
  result.places.forEach(function (p) {
    var at = p.display || [p.lon, p.lat];
    var latlng = L.latLng(at[1], at[0]);
    bounds.extend(latlng);
    nearLayer.addLayer(L.polyline([here.getLatLng(), latlng],
                                  {color: "#1565c0", weight: 2, dashArray: "4 4"}));
    var li = document.createElement("li");
    li.className = "cg-result";
    li.innerHTML = esc(p.name) + '<span class="cg-dist">步行约 ' + esc(p.walking_distance_m) +
                   " 米 · " + esc(p.walking_minutes) + " 分钟</span>" +
                   (p.phone ? " " + phone(p.phone) : "") + " " + openTag(p.open_now);
    li.addEventListener("click", function () {
      var item = findItem(p.kind, p.id);
      // No animation: markercluster's zoomToShowLayer callback can be lost under a zoom
      // animation still running, and the popup would never open.
      map.setView(latlng, 18, {animate: false});
      if (!item) { return; }
      // The sheet needs no marker on screen: show it at once (a zoom animation under way
      // can swallow markercluster's callback); a popup waits for its marker.
      if (narrowScreen()) { showDetails(item); return; }
      // A popup at the place itself: markercluster's zoomToShowLayer callback is not
      // reliable (it may never come while clusters are rebuilt), and the place may be
      // filtered out by the chips.
      L.popup({maxWidth: 320}).setLatLng(latlng).setContent(item.popup).openOn(map);
    });
    list.appendChild(li);
  });
  status(result.places.length ? "最近的" + result.kind_zh + "（直线距离 × " +
         result.detour_factor + " 估算步行距离）" : "附近没有" + result.kind_zh);
  // Keep the results clear of the bars that cover the map on a phone.
  // (Not named `phone`: a var of that name would hide phone() in the whole function.)
  var narrow = window.innerWidth < 900;
  var top = narrow ? $("cg-top").offsetHeight : 0;
  var bottom = narrow ? $("cg-sheet").offsetHeight : 0;
  map.fitBounds(bounds, {maxZoom: 17, paddingTopLeft: [30, 30 + top],
                         paddingBottomRight: [30, 30 + bottom]});
}
$("cg-locate").addEventListener("click", function () {
  if (!navigator.geolocation) { status("浏览器不支持定位，请在地图上点选位置"); return; }
  status("正在定位…");
  navigator.geolocation.getCurrentPosition(function (pos) {
    // Browsers report WGS84.
    lookup(pos.coords.longitude, pos.coords.latitude, "wgs84");
  }, function () { status("无法获取位置，请在地图上点选位置"); },
  {enableHighAccuracy: true, timeout: 10000});
});
$("cg-pick").addEventListener("click", function () {
  picking = !picking;
  $("cg-pick").classList.toggle("active", picking);
  status(picking ? "请在地图上点选一个位置" : "");
});
map.on("click", function (e) {
  if (!picking) { return; }
  picking = false;
  $("cg-pick").classList.remove("active");
  // Tapped points are in the base map's datum (GCJ-02 on AMap); the server converts.
  lookup(e.latlng.lng.toFixed(7), e.latlng.lat.toFixed(7), CONFIG.crs);
});

window.cgPublic = {
  visible: function () {
    return items.filter(visible).map(function (i) {
      return {kind: i.kind, id: i.id, name: i.name, open: i.open};
    });
  },
  lookup: lookup,
  cluster: cluster,
  map: map
};

// window.cgReady (ms since navigation start, read by bench/pages.py and the tests): the
// places, chips and handlers are built (this script ran) and, with a tile base map, its
// first view's tiles are drawn. Offline (no tiles) the outlines are the background: ready now.
(function () {
  var ready = window.cgReady = window.cgReady || {};
  function mark() {
    if (ready.interactive === undefined) { ready.interactive = ready.view = performance.now(); }
  }
  if (backgrounds.length) { backgrounds[0].once("load", mark); } else { mark(); }
})();
