(function () {
  "use strict";
  var form = document.getElementById("rr-form");
  var fileInput = document.getElementById("rr-file");
  var preview = document.getElementById("rr-preview");
  var errorBox = document.getElementById("rr-error");
  var where = document.getElementById("rr-where");
  var latInput = document.getElementById("rr-lat");
  var lonInput = document.getElementById("rr-lon");
  var submit = document.getElementById("rr-submit");
  var b = CONFIG.bbox;  // lon_min, lat_min, lon_max, lat_max

  var map = L.map("rr-map", {zoomControl: true, attributionControl: false})
    .setView(CONFIG.center, 13);
  // No base-map tiles: the district outlines are the offline background.
  if (CONFIG.outlines && CONFIG.outlines.features && CONFIG.outlines.features.length) {
    var outline = L.geoJSON(CONFIG.outlines, {style: {color: "#0b6e4f", weight: 2,
      fillColor: "#ffffff", fillOpacity: 0.6}}).addTo(map);
    map.fitBounds(outline.getBounds());
  }
  var marker = null;

  function setPoint(lat, lon, how) {
    latInput.value = lat.toFixed(6);
    lonInput.value = lon.toFixed(6);
    if (marker) { marker.setLatLng([lat, lon]); } else { marker = L.marker([lat, lon]).addTo(map); }
    where.textContent = how + "：北纬 " + lat.toFixed(5) + "，东经 " + lon.toFixed(5);
    errorBox.textContent = "";
  }

  map.on("click", function (e) { setPoint(e.latlng.lat, e.latlng.lng, "地图上选的位置"); });

  document.getElementById("rr-locate").addEventListener("click", function () {
    if (!navigator.geolocation) {
      errorBox.textContent = "这部手机不能提供位置，请在地图上点选。";
      return;
    }
    where.textContent = "正在获取位置…";
    // The browser's Geolocation API gives WGS84 coordinates.
    navigator.geolocation.getCurrentPosition(function (pos) {
      var lat = pos.coords.latitude, lon = pos.coords.longitude;
      if (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) {
        where.textContent = "";
        errorBox.textContent = "您的位置不在本市管辖范围内，请在地图上点选问题位置。";
        return;
      }
      map.setView([lat, lon], 17);
      setPoint(lat, lon, "我的位置");
    }, function () {
      where.textContent = "";
      errorBox.textContent = "没有获得位置权限，请在地图上点选问题位置。";
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
  });

  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    errorBox.textContent = "";
    if (!file) { preview.style.display = "none"; return; }
    if (file.size > CONFIG.maxBytes) {
      errorBox.textContent = "照片太大，请换一张或压缩后再传。";
    }
    preview.src = URL.createObjectURL(file);
    preview.style.display = "block";
  });

  var MESSAGES = {413: "照片太大，请换一张或压缩后再传。",
                  415: "请选择一张照片（JPG、PNG 或 HEIC）。",
                  429: "提交太频繁了，请稍后再试。"};

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.textContent = "";
    if (!fileInput.files || !fileInput.files[0]) { errorBox.textContent = "请先拍一张照片。"; return; }
    if (!form.querySelector("input[name=category]:checked")) {
      errorBox.textContent = "请选择问题类型。"; return;
    }
    if (!latInput.value || !lonInput.value) {
      errorBox.textContent = "请选择位置：点“使用我的位置”，或在地图上点一下。"; return;
    }
    submit.disabled = true;
    submit.textContent = "正在提交…";
    fetch(form.action, {method: "POST", body: new FormData(form),
                        headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (response.status === 201 && body.tracking_url) {
            window.location.assign(body.tracking_url);
            return;
          }
          var detail = typeof body.detail === "string" ? body.detail : "";
          errorBox.textContent = MESSAGES[response.status] ||
            ("提交没有成功" + (detail ? "：" + detail : "，请检查后重试。"));
          submit.disabled = false;
          submit.textContent = "提交";
        });
      })
      .catch(function () {
        errorBox.textContent = "网络不通，请稍后再试。";
        submit.disabled = false;
        submit.textContent = "提交";
      });
  });
})();
