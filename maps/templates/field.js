/* 城管通: tasks by deadline, map, navigation hand-off, reports with an offline queue.
   Every write goes into an IndexedDB queue first, with its own Idempotency-Key, and is sent
   from there: at once with a signal, when the signal returns without one. The server applies
   a resent write once and answers it again, so a write whose answer was lost is safe to
   resend. Values are shown with textContent only. */
(function () {
  "use strict";
  var DB_NAME = "citygrid-field", STORE = "queue";
  var ACTION_LABELS = {handle: "处理完毕", report: "反馈结果", verify: "提交核查"};
  var STATUS_LABELS = {dispatched: "待处理", handled: "已处理，待反馈", reported: "待核查"};
  var tasks = [];
  var seq = 0;
  var lastPos = null;
  var map = null, taskLayer = null, meLayer = null;

  function $(id) { return document.getElementById(id); }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); });
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  /* ---- the queue in IndexedDB ---- */
  var dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        var open = indexedDB.open(DB_NAME, 1);
        open.onupgradeneeded = function () {
          open.result.createObjectStore(STORE, {keyPath: "id"});
        };
        open.onsuccess = function () { resolve(open.result); };
        open.onerror = function () { reject(open.error); };
      });
    }
    return dbPromise;
  }
  function withStore(mode, work) {
    return db().then(function (conn) {
      return new Promise(function (resolve, reject) {
        var t = conn.transaction(STORE, mode);
        var request = work(t.objectStore(STORE));
        t.oncomplete = function () { resolve(request ? request.result : undefined); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function allItems() {
    return withStore("readonly", function (s) { return s.getAll(); }).then(function (items) {
      return items.sort(function (a, b) { return a.seq - b.seq; });
    });
  }
  function putItem(item) { return withStore("readwrite", function (s) { return s.put(item); }); }
  function deleteItem(id) { return withStore("readwrite", function (s) { return s.delete(id); }); }
  function enqueue(item) {
    item.id = item.id || uuid();
    item.key = uuid();
    item.seq = Date.now() * 1000 + (seq++ % 1000);
    item.state = "pending";
    item.created = new Date().toISOString();
    return putItem(item).then(function () { return item; });
  }

  /* ---- sending ---- */
  function send(item) {
    var headers = {"Idempotency-Key": item.key};
    var init = {method: item.method, credentials: "same-origin", headers: headers};
    if (item.kind === "photo") {
      var form = new FormData();
      form.append("file", item.file, item.name || "photo.jpg");
      form.append("stage", item.stage);
      if (item.note) { form.append("note", item.note); }
      init.body = form;
    } else {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(item.body);
    }
    return fetch(item.url, init);
  }
  function detailOf(response) {
    return response.json().then(function (body) {
      var d = body && (body.message_zh || body.detail);
      return typeof d === "string" ? d : JSON.stringify(d);
    }).catch(function () { return "HTTP " + response.status; });
  }

  var flushing = null, sentTotal = 0;  // sentTotal: items the server accepted since load
  function flush() {
    if (flushing) { return flushing; }
    flushing = (async function () {
      var sent = 0;
      try {
        var items = await allItems();
        for (var i = 0; i < items.length; i++) {
          var item = items[i];
          if (item.state === "failed" || item.waitFor) { continue; }
          var response;
          try { response = await send(item); } catch (e) { break; }  // no signal: later
          if (response.ok) {
            var answer = await response.json().catch(function () { return null; });
            if (answer && answer.id && item.kind === "report") {
              // Photos taken with a report go to the case the report opened.
              for (var j = i + 1; j < items.length; j++) {
                if (items[j].waitFor === item.id) {
                  items[j].waitFor = null;
                  items[j].url = "/cases/" + answer.id + "/media";
                  await putItem(items[j]);
                }
              }
            }
            await deleteItem(item.id);
            sent++;
            sentTotal++;
            continue;
          }
          var detail = await detailOf(response);
          if (response.status >= 500 || response.status === 429 || response.status === 401 ||
              (response.status === 409 && detail.indexOf("Idempotency-Key") >= 0)) {
            item.lastError = detail;
            await putItem(item);
            break;  // the server or the sign-in is the problem: keep the order, retry later
          }
          item.state = "failed";
          item.lastError = detail;
          await putItem(item);
        }
      } finally {
        flushing = null;
        await renderQueue();
        if (sent) { loadTasks(); }
      }
      return sent;
    })();
    return flushing;
  }

  /* ---- rendering ---- */
  function renderQueue() {
    return allItems().then(function (items) {
      var list = $("queue");
      list.textContent = "";
      $("queue-count").textContent = String(items.length);
      $("queue-box").classList.toggle("empty", items.length === 0);
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.className = "queued " + item.state;
        li.dataset.key = item.key;
        // The time the action was made (kept by the case), so the worker sees it is not lost.
        var made = item.body && item.body.acted_at ? " · " + item.body.acted_at.slice(11, 16) : "";
        li.textContent = item.label + made + (item.state === "failed" ?
          "（失败：" + item.lastError + "）" : "（待上传）");
        if (item.state === "failed") {
          var drop = document.createElement("button");
          drop.type = "button";
          drop.textContent = "移除";
          drop.addEventListener("click", function () {
            deleteItem(item.id).then(renderQueue);
          });
          li.appendChild(drop);
        }
        list.appendChild(li);
      });
      markQueuedTasks(items);
    });
  }

  function markQueuedTasks(items) {
    var queued = {};
    items.forEach(function (item) { if (item.caseId) { queued[item.caseId] = true; } });
    document.querySelectorAll(".task").forEach(function (li) {
      var waiting = !!queued[li.dataset.caseId];
      li.querySelector(".state").textContent = waiting ? "已排队，联网后上传" : "";
      li.querySelector("button[type=submit]").disabled = waiting;
    });
  }

  function countdown(due) {
    if (!due) { return {text: "无时限", cls: ""}; }
    var ms = new Date(due).getTime() - Date.now();
    var late = ms < 0;
    var m = Math.floor(Math.abs(ms) / 60000);
    var d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
    var span = (d ? d + "天" : "") + (d || h ? h + "小时" : "") + mm + "分";
    return {text: (late ? "已超时 " : "剩余 ") + span,
            cls: late ? "late" : (ms < 2 * 3600 * 1000 ? "soon" : "")};
  }
  function tick() {
    document.querySelectorAll(".task .due").forEach(function (el) {
      var c = countdown(el.dataset.due);
      el.textContent = c.text;
      el.className = "due " + c.cls;
    });
  }

  function renderTasks() {
    var list = $("tasks");
    list.textContent = "";
    var tpl = $("task-tpl");
    tasks.forEach(function (t) {
      var li = tpl.content.firstElementChild.cloneNode(true);
      li.dataset.caseId = String(t.id);
      li.querySelector(".no").textContent = t.case_no;
      li.querySelector(".due").dataset.due = t.due_at || "";
      li.querySelector(".cat").textContent = (t.category_name || t.category_code) + " · " +
        (STATUS_LABELS[t.status] || t.status);
      li.querySelector(".desc").textContent = t.description;
      li.querySelector("a.geo").setAttribute("href", t.nav.geo);
      li.querySelector("a.amap").setAttribute("href", t.nav.amap);
      li.querySelector("a.baidu").setAttribute("href", t.nav.baidu);
      var form = li.querySelector("form.act");
      var action = t.actions[0];
      if (!action) { form.hidden = true; }
      form.querySelector("button").textContent = ACTION_LABELS[action] || "";
      form.querySelector(".verdict").hidden = action !== "verify";
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        submitTask(t, action, form);
      });
      list.appendChild(li);
    });
    $("tasks-title").textContent = (CONFIG.role === "supervisor" ? "待核查" : "我的任务") +
      "（" + tasks.length + "）";
    tick();
    drawMap();
    allItems().then(markQueuedTasks);
  }

  function loadTasks() {
    return fetch("/field/tasks", {credentials: "same-origin"}).then(function (r) {
      if (r.status === 401) { window.location.assign("/login?next=/field"); return null; }
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (data) {
      if (!data) { return; }
      tasks = data;
      $("tasks-note").textContent = navigator.onLine ? "" : "离线：显示上次获取的任务";
      renderTasks();
    }).catch(function () {
      $("tasks-note").textContent = "无法获取任务（离线？），联网后自动刷新";
    });
  }

  function drawMap() {
    if (!window.L || !$("map")) { return; }
    if (!map) {
      map = L.map("map", {zoomControl: true, attributionControl: false});
      taskLayer = L.layerGroup().addTo(map);
      meLayer = L.layerGroup().addTo(map);
      map.setView([36.66, 117.06], 13);
    }
    taskLayer.clearLayers();
    var points = [];
    tasks.forEach(function (t) {
      var late = t.due_at && new Date(t.due_at).getTime() < Date.now();
      var marker = L.circleMarker([t.lat, t.lon], {radius: 8, weight: 2,
        color: late ? "#c62828" : "#1565c0", fillOpacity: 0.6});
      marker.bindTooltip(document.createTextNode(t.case_no));
      marker.addTo(taskLayer);
      points.push([t.lat, t.lon]);
    });
    if (lastPos) { points.push([lastPos.lat, lastPos.lon]); }
    if (points.length) { map.fitBounds(points, {padding: [24, 24], maxZoom: 17}); }
  }

  function showMe(pos) {
    lastPos = {lon: pos.coords.longitude, lat: pos.coords.latitude,
               accuracy: pos.coords.accuracy};
    $("report-where").textContent = "位置：" + lastPos.lat.toFixed(6) + ", " +
      lastPos.lon.toFixed(6) + "（WGS84，精度约 " + Math.round(lastPos.accuracy) + " 米）";
    if (meLayer) {
      meLayer.clearLayers();
      L.circleMarker([lastPos.lat, lastPos.lon], {radius: 6, color: "#00897b",
        fillOpacity: 1}).addTo(meLayer);
    }
  }

  /* ---- writes: all through the queue ---- */
  /* When the worker pressed the button, in the phone's local time with its offset
     (2026-12-03T10:02:31.512+08:00): the case keeps it, not the time the queue sent it. */
  function actedAt() {
    var d = new Date(), off = -d.getTimezoneOffset(), a = Math.abs(off);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    var ms = String(d.getMilliseconds() + 1000).slice(1);
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + "T" +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) + "." + ms +
      (off < 0 ? "-" : "+") + two(Math.floor(a / 60)) + ":" + two(a % 60);
  }

  function photoItems(files, url, stage, note, label, waitFor) {
    return Array.prototype.map.call(files || [], function (file) {
      return {kind: "photo", method: "POST", url: url, stage: stage, note: note, file: file,
              name: file.name, waitFor: waitFor || null, label: "照片 " + file.name + " · " + label};
    });
  }

  async function submitTask(t, action, form) {
    var note = form.note.value.trim();
    var items = [];
    if (action === "verify") {
      var result = form.querySelector("input[name=result]:checked").value;
      var body = {result: result, note: note, acted_at: actedAt()};
      if (lastPos) { body.lon = lastPos.lon; body.lat = lastPos.lat; }
      items.push({kind: "json", method: "POST", url: "/field/cases/" + t.id + "/verify",
                  body: body, caseId: t.id, label: "核查" + (result === "passed" ? "通过" : "未通过") +
                  " · " + t.case_no});
    } else {
      items.push({kind: "json", method: "POST", url: "/cases/" + t.id + "/actions/" + action,
                  body: {note: note, acted_at: actedAt()}, caseId: t.id,
                  label: ACTION_LABELS[action] + " · " + t.case_no});
    }
    var stage = action === "verify" ? "verification" : "handling";
    items = items.concat(photoItems(form.photos.files, "/cases/" + t.id + "/media", stage, note,
                                    t.case_no));
    for (var i = 0; i < items.length; i++) { await enqueue(items[i]); }
    form.reset();
    await renderQueue();
    flush();
  }

  async function submitReport(ev) {
    ev.preventDefault();
    var form = ev.target;
    if (!lastPos) { $("report-where").textContent = "位置：请先获取当前位置"; return; }
    var parts = form.category.value.split("|");
    var report = await enqueue({kind: "report", method: "POST", url: "/field/reports",
      body: {category_type: parts[0], category_code: parts[1], lon: lastPos.lon,
             lat: lastPos.lat, accuracy_m: lastPos.accuracy,
             description: form.description.value.trim()},
      label: "上报问题 · " + form.category.options[form.category.selectedIndex].text});
    var photos = photoItems(form.photos.files, null, "report", "", "上报问题", report.id);
    for (var i = 0; i < photos.length; i++) { await enqueue(photos[i]); }
    form.reset();
    await renderQueue();
    flush();
  }

  async function submitAsset(ev) {
    ev.preventDefault();
    var form = ev.target;
    var parts = form.change.value.split("|");
    var bodies = {off: {lit: false}, fixed: {lit: true, state: "intact"},
                  missing: {state: "missing"}, replaced: {state: "intact"}};
    await enqueue({kind: "json", method: "PATCH",
                   url: "/assets/" + parts[0] + "/" + form.code.value.trim(),
                   body: Object.assign({acted_at: actedAt()}, bodies[parts[1]]),
                   label: form.change.options[form.change.selectedIndex].text + " · " +
                          form.code.value.trim()});
    form.reset();
    await renderQueue();
    flush();
  }

  function showNet() {
    var on = navigator.onLine;
    $("net").textContent = on ? "在线" : "离线";
    $("net").classList.toggle("off", !on);
  }

  /* ---- start ---- */
  function start() {
    showNet();
    window.addEventListener("online", function () { showNet(); flush(); loadTasks(); });
    window.addEventListener("offline", showNet);
    if (CONFIG.role === "supervisor") {
      $("report-box").hidden = false;
      var select = document.querySelector("#report-form select[name=category]");
      CONFIG.categories.forEach(function (c) {
        var opt = document.createElement("option");
        opt.value = c.type + "|" + c.code;
        opt.textContent = (c.type === "event" ? "事件 " : "部件 ") + c.code + " " + c.name;
        select.appendChild(opt);
      });
      $("report-form").addEventListener("submit", submitReport);
    } else {
      $("asset-box").hidden = false;
      $("asset-form").addEventListener("submit", submitAsset);
    }
    $("locate").addEventListener("click", function () {
      if (!navigator.geolocation) { return; }
      navigator.geolocation.getCurrentPosition(function (p) { showMe(p); drawMap(); },
        function () { $("report-where").textContent = "位置：无法获取（请允许定位）"; },
        {enableHighAccuracy: true, timeout: 15000});
    });
    if (navigator.geolocation && navigator.permissions) {
      navigator.permissions.query({name: "geolocation"}).then(function (p) {
        if (p.state === "granted") { navigator.geolocation.watchPosition(showMe); }
      }).catch(function () {});
    }
    if ("serviceWorker" in navigator && CONFIG.worker) {
      navigator.serviceWorker.register(CONFIG.worker, {scope: CONFIG.scope}).catch(function () {});
    }
    if (window.EventSource) {
      var timer = null;
      var events = new EventSource("/events/cases");
      var refresh = function () { clearTimeout(timer); timer = setTimeout(loadTasks, 300); };
      events.addEventListener("case", refresh);
      events.addEventListener("resync", refresh);
    }
    setInterval(tick, 1000);
    setInterval(flush, 15000);
    renderQueue();
    // window.cgReady (ms since navigation start; bench/pages.py reads it, as on the map
    // pages): interactive once the first task list and its map are drawn.
    var ready = window.cgReady = window.cgReady || {};
    loadTasks().then(function () {
      ready.interactive = ready.view = performance.now();
    }).then(flush);
  }

  window.__field = {flush: flush, loadTasks: loadTasks, queue: allItems,
                    sent: function () { return sentTotal; }};
  start();
})();
