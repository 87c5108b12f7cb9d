// Dispatcher desk (调度台). Wrapped by maps/dispatcher.py in a function that defines `map` (the
// Leaflet map), CONFIG (labels, categories, deadlines) and DATA (outlines and stations, WGS84).
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

$("cg-title").textContent = CONFIG.title;

// ---- the form ---------------------------------------------------------------------------------
Object.keys(labels.crs).forEach(function (crs) {
  var o = document.createElement("option");
  o.value = crs;
  o.textContent = labels.crs[crs];
  $("cg-crs").appendChild(o);
});
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
// Eleven thousand small polygons: one canvas draws them far faster than SVG paths.
var grids = L.geoJSON(DATA.grid_cells, {
  interactive: false, pane: "cg-grids", renderer: L.canvas({padding: 0.2, pane: "cg-grids"}),
  style: {color: "#3182bd", weight: 0.6, opacity: 0.7, fill: false}
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
    ["WGS84", esc(r.lon.toFixed(6) + ", " + r.lat.toFixed(6)) +
              (r.raw_crs !== "wgs84" ? "（由 " + esc(label("raw_crs", r.raw_crs)) + " 换算）" : "")]
  ]);
  var box = $("cg-route");
  box.setAttribute("data-grid", r.grid_code);
  box.setAttribute("data-owner", owner.name);
}
function drawRoute(r) {
  highlight.clearLayers();
  pickLayer.clearLayers();
  var point = L.circleMarker([r.lat, r.lon], {radius: 8, color: "#fff", weight: 2,
                                              fillColor: "#1a73e8", fillOpacity: 1,
                                              pane: "cg-pick"})
    .bindTooltip("投诉位置").addTo(pickLayer);
  var st = r.station && stationsById[r.station.code], sll = null;
  if (st) {
    sll = [st.geometry.coordinates[1], st.geometry.coordinates[0]];
    L.polyline([[r.lat, r.lon], sll], {color: "#2e7d32", weight: 2, dashArray: "5 5",
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
      map.fitBounds(view, {maxZoom: 18, padding: [40, 40], animate: false});
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
    var open = cases.filter(function (c) { return c.is_open; }).map(function (c) {
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
      var marker = L.circleMarker([c.lat, c.lon], {radius: 6, color: "#bf360c", weight: 1,
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
function locate() {
  var input = readInput(), box = $("cg-status");
  if (!input) { setResult(box, "bad", "请输入经纬度，或在地图上单击选点"); return; }
  setResult(box, "", "正在定位…");
  $("cg-case").disabled = true;
  $("cg-route").removeAttribute("data-highlighted");
  $("cg-nearby").removeAttribute("data-count");
  send("POST", "/route", input).then(function (res) {
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
    return Promise.all([drawRoute(lastRoute), showNearby(lastRoute)]);
  }).catch(function (err) { setResult(box, "bad", "请求失败：" + err.message); });
}
$("cg-form").addEventListener("submit", function (ev) { ev.preventDefault(); locate(); });
map.on("click", function (e) {
  $("cg-x").value = e.latlng.lng.toFixed(6);
  $("cg-y").value = e.latlng.lat.toFixed(6);
  $("cg-crs").value = "wgs84";
  locate();
});
$("cg-clear").addEventListener("click", function () {
  lastRoute = null;
  lastInput = null;
  ["cg-x", "cg-y", "cg-component"].forEach(function (id) { $(id).value = ""; });
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
function fileCase() {
  var box = $("cg-file-result");
  if (!lastRoute || !lastInput) { setResult(box, "bad", "请先定位"); return; }
  // The raw point as typed, with its CRS: the case keeps both, the server converts.
  var body = {category_type: lastInput.category_type, category_code: lastInput.category_code,
              channel: $("cg-channel").value, x: lastInput.x, y: lastInput.y,
              crs: lastInput.crs, description: $("cg-desc").value.trim(),
              urgency: $("cg-urgency").value, area_type: $("cg-area").value};
  $("cg-file").disabled = true;
  setResult(box, "", "正在立案…");
  var created = null;
  send("POST", "/cases", body).then(function (res) {
    if (res.status !== 201) { throw new Error("未立案：" + detail(res.body)); }
    created = res.body;
    box.setAttribute("data-case-id", created.id);
    return send("POST", "/cases/" + created.id + "/actions/file", {});
  }).then(function (res) {
    if (res.status !== 200) { throw new Error("案件 " + created.case_no + " 已登记，立案失败：" +
                                              detail(res.body)); }
    return send("POST", "/cases/" + created.id + "/actions/dispatch", {});
  }).then(function (res) {
    if (res.status !== 200) { throw new Error("案件 " + created.case_no + " 已立案，派遣失败：" +
                                              detail(res.body)); }
    var c = res.body;
    var text = "已立案派遣：" + c.case_no + "，网格 " + c.grid_code + "，处置期限 " +
      when(c.due_at) + (c.due_approximate ? "（节假日数据外，按周一至周五估算）" : "");
    if (c.supervised) { text += "；重复投诉，已列入重点督办"; }
    else if (c.repeat_of) { text += "；疑似重复投诉（同类案件 #" + c.repeat_of + "）"; }
    setResult(box, "ok", text);
    box.setAttribute("data-status", c.status);
    refreshLists();
    if (lastRoute) { showNearby(lastRoute); }
  }).catch(function (err) {
    setResult(box, "bad", err.message);
  }).then(function () { $("cg-file").disabled = false; });
}
$("cg-file").addEventListener("click", fileCase);

// ---- case lists ---------------------------------------------------------------------------------
var caseMarker = L.featureGroup().addTo(map);
function showCase(id) {
  getJSON("/cases/" + id).then(function (c) {
    caseMarker.clearLayers();
    L.circleMarker([c.lat, c.lon], {radius: 9, color: "#b71c1c", weight: 2,
                                    fillColor: "#ef5350", fillOpacity: 0.9})
      .bindPopup(caseLine(c) + "<br>" + esc(c.description)).addTo(caseMarker).openPopup();
    map.setView([c.lat, c.lon], Math.max(map.getZoom(), 17), {animate: false});
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
  return Promise.all([loadOpen(), loadOverdue(), loadSupervised()]).catch(function (err) {
    setResult($("cg-status"), "bad", "案件列表读取失败：" + err.message);
  });
}
document.querySelectorAll(".cg-tab").forEach(function (tab) {
  tab.addEventListener("click", function () {
    var name = tab.getAttribute("data-tab");
    document.querySelectorAll(".cg-tab").forEach(function (t) {
      t.classList.toggle("cg-active", t === tab);
    });
    ["open", "overdue", "supervised"].forEach(function (p) {
      $("cg-pane-" + p).classList.toggle("cg-hidden", p !== name);
    });
  });
});
$("cg-refresh").addEventListener("click", refreshLists);

if (CONFIG.bounds) { map.fitBounds(CONFIG.bounds, {padding: [10, 10], animate: false}); }
showGrids();
var listsLoaded = refreshLists();
window.cgDispatch = {map: map, highlight: highlight, nearby: nearbyLayer, grids: grids,
                     lists: listsLoaded, route: function () { return lastRoute; }};
