// Planner page logic. Wrapped by maps/planner.py in a function that defines
// `map` (the Leaflet map), CONFIG (labels, colours, limits) and DATA (GeoJSON layers).
// Every rule decision is the server's: this file only draws, posts and paints answers.
"use strict";
// esc(value) (maps/escaping.py ESC_JS, defined by the wrapper) makes data safe for HTML:
// every value from the server goes through it, or through textContent, never raw.
var labels = CONFIG.labels, colors = CONFIG.colors;
var $ = function (id) { return document.getElementById(id); };

function merge(target, source) {
  Object.keys(source).forEach(function (k) {
    if (source[k] && typeof source[k] === "object" && target[k] && typeof target[k] === "object") {
      merge(target[k], source[k]);
    } else {
      target[k] = source[k];
    }
  });
  return target;
}
function api(path) { return CONFIG.apiBase + path; }
// A timestamp with offset as the city reads it: its time zone, 24-hour, "2026-06-01 19:30".
var cityClock = new Intl.DateTimeFormat("zh-CN", {
  timeZone: CONFIG.timeZone, hourCycle: "h23", year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit"});
function cityTime(iso) {
  var parts = {};
  cityClock.formatToParts(new Date(iso)).forEach(function (x) { parts[x.type] = x.value; });
  return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
}

function label(kind, value) { return (labels[kind] && labels[kind][value]) || value; }
function table(rows) {
  return '<table class="cg-popup">' + rows.map(function (r) {
    return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
  }).join("") + "</table>";
}
function slotText(p) {
  var week = "一二三四五六日";
  var slots = (p.time_slots || []).map(function (s) {
    return "周" + s.days.map(function (d) { return week[d - 1]; }).join("") + " " +
      s.start + "–" + s.end + (s.end <= s.start ? "（次日）" : "");
  }).join("；");
  var seasons = (p.seasons || []).map(function (s) { return s.from + "至" + s.to; }).join("；");
  return slots + (seasons ? "，季节 " + seasons : "");
}

merge(L.drawLocal, CONFIG.drawLocal);
$("cg-title").textContent = CONFIG.title;

// ---- reference layers -------------------------------------------------------------------
var overlays = {};
var districts = L.geoJSON(DATA.districts, {
  interactive: false, style: {color: "#444", weight: 2, dashArray: "6 4", fill: false}
}).addTo(map);
overlays["行政区界"] = districts;

Object.keys(labels.street_class).forEach(function (cls) {
  var layer = L.geoJSON(DATA.roads, {
    filter: function (f) { return f.properties.street_class === cls; },
    style: function () {
      return {color: colors.street_class[cls], weight: cls === "demonstration" ? 6 : 4,
              opacity: 0.85};
    },
    onEachFeature: function (f, l) {
      l.bindTooltip(esc(f.properties.name) + "（" + esc(label("street_class", cls)) + "，宽" +
                    esc(f.properties.width_m) + "米）");
    }
  }).addTo(map);
  overlays['<span style="color:' + colors.street_class[cls] + '">■</span> 道路：' +
           label("street_class", cls)] = layer;
});

var limits = CONFIG.limits || {};
function siteLimit(kind) {
  if (kind === "fire_lane") { return null; }
  return (limits.sensitive_distance_m || {})[kind];
}
var siteBuffers = L.layerGroup().addTo(map);
var sites = L.geoJSON(DATA.sensitive_sites, {
  pointToLayer: function (f, latlng) {
    var c = colors.site_kind[f.properties.kind] || "#333";
    return L.circleMarker(latlng, {radius: 6, color: "#222", weight: 1, fillColor: c,
                                   fillOpacity: 0.95});
  },
  style: function (f) {
    var c = colors.site_kind[f.properties.kind] || "#333";
    return f.properties.kind === "fire_lane"
      ? {color: c, weight: 5, dashArray: "8 6", opacity: 0.9}
      : {color: c, weight: 2, fillOpacity: 0.3};
  },
  onEachFeature: function (f, l) {
    var kind = label("site_kind", f.properties.kind), limit = siteLimit(f.properties.kind);
    l.bindTooltip(esc(f.properties.name) + "（" + esc(kind) +
                  (limit ? "，" + esc(limit) + "米内禁设" : "") + "）");
    if (limit && f.geometry.type === "Point") {
      var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
      L.circle(ll, {radius: limit, color: colors.site_kind[f.properties.kind], weight: 1,
                    dashArray: "4 4", fillOpacity: 0.06, interactive: false}).addTo(siteBuffers);
    }
  }
}).addTo(map);
overlays["学校/医院/地铁口/消防通道"] = sites;
overlays["禁设范围"] = siteBuffers;

// ---- existing zones, one overlay per type --------------------------------------------------
var zoneGroups = {};
Object.keys(labels.zone_type).forEach(function (t) {
  zoneGroups[t] = L.featureGroup().addTo(map);
  overlays['<span style="color:' + colors.zone_type[t] + '">▮</span> 摊群点：' +
           label("zone_type", t)] = zoneGroups[t];
});
function zoneStyle(p) {
  return {color: colors.zone_type[p.zone_type] || "#1a9641", weight: 2,
          dashArray: p.status === "draft" ? "5 5" : null, fillOpacity: 0.3};
}
function zonePopup(f) {
  var p = f.properties, id = p.id !== undefined ? p.id : f.id;
  var html = table([["名称", p.name], ["编号", "#" + id + " 版本 " + (p.version || 1)],
                    ["类型", label("zone_type", p.zone_type)],
                    ["状态", label("status", p.status)], ["时段", slotText(p)],
                    ["摊位数", p.capacity], ["管理方", p.operator]]);
  html += '<div class="cg-popup">';
  html += '<button type="button" data-act="edit" data-id="' + esc(id) + '">编辑</button>';
  if (p.status === "draft") {
    html += '<button type="button" data-act="approve" data-id="' + esc(id) + '">批准</button>';
  }
  if (p.status !== "retired") {
    html += '<button type="button" data-act="split" data-id="' + esc(id) + '">分割</button>';
  }
  html += '<button type="button" data-act="retire" data-id="' + esc(id) + '">撤销</button>';
  html += '<button type="button" data-act="history" data-id="' + esc(id) + '">历史版本</button>';
  return html + "</div>";
}
var zonesById = {};
function paintZones(collection) {
  Object.keys(zoneGroups).forEach(function (t) { zoneGroups[t].clearLayers(); });
  zonesById = {};
  L.geoJSON(collection, {
    style: function (f) { return zoneStyle(f.properties); },
    onEachFeature: function (f, l) {
      var id = f.properties.id !== undefined ? f.properties.id : f.id;
      zonesById[id] = f;
      l.bindPopup(zonePopup(f));
      l.bindTooltip(esc(f.properties.name));
      (zoneGroups[f.properties.zone_type] || zoneGroups.night_market).addLayer(l);
    }
  });
}
paintZones(DATA.stall_zones);
function reloadZones() {
  return fetch(api("/zones")).then(function (r) { return r.json(); }).then(paintZones);
}

// ---- drawing ---------------------------------------------------------------------------------
var drawn = new L.FeatureGroup().addTo(map);
var violationLayer = L.featureGroup().addTo(map);
var activeLayer = L.featureGroup().addTo(map);
overlays["检查结果"] = violationLayer;
overlays["所选时刻开放"] = activeLayer;
var shape = {color: "#1a73e8", weight: 3, fillOpacity: 0.15};
var drawControl = new L.Control.Draw({
  position: "topleft",
  draw: {
    // Self-intersections are refused while drawing; the server checks again anyway.
    polygon: {allowIntersection: false, showArea: false, shapeOptions: shape},
    rectangle: {showArea: false, shapeOptions: shape},
    polyline: false, circle: false, marker: false, circlemarker: false
  },
  edit: {featureGroup: drawn, remove: true}
});
map.addControl(drawControl);
L.control.layers(null, overlays, {collapsed: true, position: "topright"}).addTo(map);
L.control.scale({imperial: false}).addTo(map);

var legend = L.control({position: "bottomright"});
legend.onAdd = function () {
  var div = L.DomUtil.create("div", "cg-legend");
  var html = "<b>道路</b>";
  Object.keys(labels.street_class).forEach(function (c) {
    html += '<div><i style="background:' + colors.street_class[c] + '"></i>' +
            esc(label("street_class", c)) + "</div>";
  });
  html += "<b>敏感点</b>";
  Object.keys(labels.site_kind).forEach(function (k) {
    html += '<div><i style="background:' + colors.site_kind[k] + '"></i>' +
            esc(label("site_kind", k)) + "</div>";
  });
  html += '<b>检查问题</b><div><i style="background:' + colors.violation + '"></i>违规部分</div>';
  div.innerHTML = html;
  return div;
};
legend.addTo(map);

function setResult(el, cls, text) {
  el.className = "cg-result" + (cls ? " " + cls : "");
  el.textContent = text;
}
function clearViolations() {
  violationLayer.clearLayers();
  $("cg-violations").innerHTML = "";
}
// A split draws a straight cutting line (two clicks: maxPoints 2 finishes on the second) with
// leaflet-draw's polyline handler, outside the toolbar.
var splitting = null;
var splitLine = new L.Draw.Polyline(map, {shapeOptions: {color: "#d50000", weight: 3},
                                          maxPoints: 2});
map.on(L.Draw.Event.CREATED, function (e) {
  if (splitting !== null && e.layerType === "polyline") {
    var id = splitting, box = $("cg-result");
    splitting = null;
    send("POST", "/zones/" + id + "/split", e.layer.toGeoJSON(8).geometry).then(function (res) {
      if (res.status === 201) {
        clearViolations();
        setResult(box, "ok", "已将 #" + id + " 分割为 " + res.body.features.map(function (f) {
          return "#" + f.id;
        }).join("、") + "（草稿），原摊群点已撤销");
        box.setAttribute("data-split-into", res.body.features.length);
        return reloadZones();
      }
      handleRefusal(res);
    });
    return;
  }
  drawn.clearLayers();
  drawn.addLayer(e.layer);
  clearViolations();
  setResult($("cg-result"), "", "已绘制，请填写信息后保存");
});
map.on(L.Draw.Event.DELETED, function () {
  if (!drawn.getLayers().length) { $("cg-zone-id").value = ""; $("cg-zone-version").value = ""; }
});

function readForm() {
  var days = Array.prototype.slice.call(document.querySelectorAll('input[name="day"]:checked'))
    .map(function (c) { return parseInt(c.value, 10); });
  var props = {
    name: $("cg-name").value.trim(), zone_type: $("cg-type").value,
    time_slots: [{days: days, start: $("cg-start").value, end: $("cg-end").value}],
    seasons: [], capacity: parseInt($("cg-capacity").value, 10),
    operator: $("cg-operator").value.trim()
  };
  var from = $("cg-season-from").value.trim(), to = $("cg-season-to").value.trim();
  if (from && to) { props.seasons.push({from: from, to: to}); }
  return props;
}
function fillForm(p) {
  $("cg-name").value = p.name || "";
  $("cg-type").value = p.zone_type;
  var slot = (p.time_slots || [])[0] || {days: [], start: "18:00", end: "22:30"};
  document.querySelectorAll('input[name="day"]').forEach(function (c) {
    c.checked = slot.days.indexOf(parseInt(c.value, 10)) >= 0;
  });
  $("cg-start").value = (slot.start || "").slice(0, 5);
  $("cg-end").value = (slot.end || "").slice(0, 5);
  var season = (p.seasons || [])[0] || {};
  $("cg-season-from").value = season.from || "";
  $("cg-season-to").value = season.to || "";
  $("cg-capacity").value = p.capacity;
  $("cg-operator").value = p.operator || "";
}
function currentFeature() {
  var layers = drawn.getLayers();
  if (!layers.length) { return null; }
  var f = layers[0].toGeoJSON(8);
  f.properties = readForm();
  return f;
}

function paintViolations(list) {
  clearViolations();
  var ul = $("cg-violations"), seen = {}, listed = 0;
  list.forEach(function (v) {
    var p = v.properties;
    var layer = L.geoJSON(v, {
      style: {color: colors.violation, weight: 3, fillColor: colors.violation, fillOpacity: 0.45},
      pointToLayer: function (f, ll) {
        return L.circleMarker(ll, {radius: 8, color: colors.violation, fillOpacity: 0.8});
      }
    }).bindTooltip(esc(p.message_zh)).addTo(violationLayer);
    // The same rule broken with the same words (a street in several pieces) is one line in
    // the list; clicking it shows every piece.
    var key = p.rule + "\u0000" + p.message_zh;
    if (seen[key]) { seen[key].push(layer); return; }
    var pieces = seen[key] = [layer];
    listed += 1;
    var li = document.createElement("li");
    li.className = "cg-violation";
    li.setAttribute("data-rule", p.rule);
    li.innerHTML = '<span class="cg-rule">' + esc(label("rule", p.rule)) + "</span>：" +
      esc(p.message_zh);
    li.title = p.message_en;
    li.addEventListener("click", function () {
      map.fitBounds(L.featureGroup(pieces).getBounds().pad(0.5));
    });
    ul.appendChild(li);
  });
  return listed;
}
function offerRepair(body) {
  var box = $("cg-result");
  setResult(box, "bad", "多边形无效，未保存：" + body.reason);
  if (body.repair && body.repair.geometry) {
    var btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "采用自动修复建议（ST_MakeValid）";
    btn.addEventListener("click", function () {
      var g = body.repair.geometry;
      if (g.type !== "Polygon") {
        setResult(box, "bad", "修复结果为 " + g.type + "，请手工重画");
        return;
      }
      drawn.clearLayers();
      L.geoJSON(g, {style: shape}).eachLayer(function (l) { drawn.addLayer(l); });
      setResult(box, "", "已采用修复建议，请检查后保存");
    });
    box.appendChild(document.createElement("br"));
    box.appendChild(btn);
  }
}
function headers() {
  // Who saves is the signed-in user (login cookie), recorded by the server.
  return {"Content-Type": "application/json"};
}
function send(method, path, body) {
  var opts = {method: method, headers: headers()};
  if (body !== undefined) { opts.body = JSON.stringify(body); }
  return fetch(api(path), opts).then(function (r) {
    return r.json().then(function (data) { return {status: r.status, body: data}; });
  });
}
function handleRefusal(res) {
  var box = $("cg-result");
  if (res.body.violations) {
    var problems = paintViolations(res.body.violations);
    setResult(box, "bad", "未通过检查：" + problems + " 项问题，未保存");
  } else if (res.body.reason) {
    offerRepair(res.body);
  } else {
    // The API's Chinese message (api/errors.py); the English detail stays as a tooltip.
    setResult(box, "bad", "未保存：" + (res.body.message_zh || "请求被拒绝（" + res.status + "）"));
    box.title = typeof res.body.detail === "string" ? res.body.detail : "";
  }
}

$("cg-form").addEventListener("submit", function (ev) {
  ev.preventDefault();
  var f = currentFeature(), box = $("cg-result");
  if (!f) { setResult(box, "bad", "请先在地图上画出摊群点"); return; }
  var id = $("cg-zone-id").value;
  if (id) { f.properties.version = parseInt($("cg-zone-version").value, 10); }
  setResult(box, "", "正在检查并保存…");
  send(id ? "PUT" : "POST", id ? "/zones/" + id : "/zones", f).then(function (res) {
    if (res.status === 200 || res.status === 201) {
      clearViolations();
      drawn.clearLayers();
      $("cg-zone-id").value = "";
      $("cg-zone-version").value = "";
      setResult(box, "ok", "已保存草稿 #" + res.body.id + "（版本 " +
                res.body.properties.version + "），涉及网格 " +
                res.body.properties.grid_codes.length + " 个");
      box.setAttribute("data-zone-id", res.body.id);
      return reloadZones();
    }
    handleRefusal(res);
  }).catch(function (err) { setResult(box, "bad", "请求失败：" + err); });
});
$("cg-check").addEventListener("click", function () {
  var f = currentFeature(), box = $("cg-result");
  if (!f) { setResult(box, "bad", "请先在地图上画出摊群点"); return; }
  send("POST", "/zones/check", f).then(function (res) {
    if (res.status !== 200) { handleRefusal(res); return; }
    var problems = paintViolations(res.body.violations);
    setResult(box, res.body.passed ? "ok" : "bad", res.body.passed
      ? "检查通过（面积 " + res.body.area_m2 + " 平方米）"
      : "未通过检查：" + problems + " 项问题");
  });
});
$("cg-clear").addEventListener("click", function () {
  drawn.clearLayers();
  clearViolations();
  $("cg-zone-id").value = "";
  $("cg-zone-version").value = "";
  setResult($("cg-result"), "", "");
});

// ---- popup actions on existing zones --------------------------------------------------------
map.on("popupopen", function (e) {
  e.popup.getElement().querySelectorAll("button[data-act]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var id = btn.getAttribute("data-id"), act = btn.getAttribute("data-act");
      var box = $("cg-result"), f = zonesById[id];
      map.closePopup();
      if (act === "edit" && f) {
        drawn.clearLayers();
        L.geoJSON(f.geometry, {style: shape}).eachLayer(function (l) { drawn.addLayer(l); });
        fillForm(f.properties);
        $("cg-zone-id").value = id;
        $("cg-zone-version").value = f.properties.version;
        setResult(box, "", "正在编辑 #" + id + "：用编辑工具移动顶点，或重画后保存");
      } else if (act === "split") {
        splitting = id;
        splitLine.enable();
        setResult(box, "", "分割 #" + id + "：在摊群点两侧各点一下，画出穿过它的分割线");
      } else if (act === "approve") {
        send("POST", "/zones/" + id + "/approve").then(function (res) {
          if (res.status === 200) {
            setResult(box, "ok", "已批准 #" + id);
            clearViolations();
            return reloadZones();
          }
          handleRefusal(res);
        });
      } else if (act === "retire" && window.confirm("确定撤销摊群点 #" + id + "？")) {
        send("POST", "/zones/" + id + "/retire").then(function (res) {
          if (res.status === 200) { setResult(box, "ok", "已撤销 #" + id); return reloadZones(); }
          handleRefusal(res);
        });
      } else if (act === "history") {
        fetch(api("/zones/" + id + "/versions")).then(function (r) { return r.json(); })
          .then(function (fc) {
            setResult(box, "", "#" + id + " 历史：" + fc.features.map(function (v) {
              var p = v.properties;
              return "v" + p.version + " " + label("action", p.action) + " " +
                label("status", p.status) + " " + p.changed_by + " " + cityTime(p.changed_at);
            }).join("；"));
          });
      }
    });
  });
});

// ---- time picker -------------------------------------------------------------------------------
function showActive() {
  var typed = $("cg-at").value.trim().replace(" ", "T"), box = $("cg-at-result");
  if (!/^\d{4}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d$/.test(typed)) {
    setResult(box, "bad", "请按 2026-06-01 19:30 的格式填写时刻（24 小时制）");
    return;
  }
  var at = typed;
  var url = "/zones/active?at=" + encodeURIComponent(at) +
            ($("cg-drafts").checked ? "&include_drafts=true" : "");
  fetch(api(url)).then(function (r) { return r.json(); }).then(function (fc) {
    activeLayer.clearLayers();
    L.geoJSON(fc, {
      style: {color: "#ffd600", weight: 5, fillColor: "#ffea00", fillOpacity: 0.45},
      onEachFeature: function (f, l) { l.bindTooltip(esc(f.properties.name) + "（开放中）"); }
    }).addTo(activeLayer);
    box.setAttribute("data-count", fc.features.length);
    setResult(box, "ok", at.replace("T", " ") + " 开放的摊群点 " + fc.features.length + " 个" +
      (fc.features.length ? "：" + fc.features.map(function (f) {
        return f.properties.name;
      }).join("、") : ""));
  });
}
$("cg-at-go").addEventListener("click", showActive);

if (CONFIG.bounds) { map.fitBounds(CONFIG.bounds, {padding: [20, 20]}); }
window.cgPlanner = {map: map, drawn: drawn, violations: violationLayer, active: activeLayer,
                    zoneGroups: zoneGroups, splitLine: splitLine, overlays: overlays,
                    editTool: drawControl._toolbars.edit._modes.edit.handler,
                    polygonTool: drawControl._toolbars.draw._modes.polygon.handler};

// window.cgReady (ms since navigation start; bench/pages.py and the tests read it): every
// layer is embedded, so the page is interactive once this script ran and the browser painted
// the result (the frame after it).
(function () {
  var ready = window.cgReady = window.cgReady || {};
  requestAnimationFrame(function () {
    setTimeout(function () { ready.interactive = ready.view = performance.now(); }, 0);
  });
})();
