/* 城管通 service worker: the app shell and the last task list stay usable without a signal.
   Writes (POST/PATCH) are never cached or replayed here: the page queues them in IndexedDB
   and resends them with their Idempotency-Key, so each is applied exactly once. */
"use strict";
var CACHE = {{CACHE}};
var SHELL = {{SHELL}};
var CACHED_PATHS = SHELL.concat(["/field/tasks"]);

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    // The task list too: the page fetched it before this worker controlled it.
    return cache.addAll(SHELL).then(function () {
      return cache.add("/field/tasks").catch(function () {});
    });
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) {
      return n.indexOf("citygrid-field-") === 0 && n !== CACHE;
    }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin ||
      CACHED_PATHS.indexOf(url.pathname) < 0) {
    return;  // writes, live events and everything else go straight to the network
  }
  // Network first (fresh tasks when there is a signal), the cached copy when there is none.
  event.respondWith(fetch(request).then(function (response) {
    if (response.ok) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
    }
    return response;
  }).catch(function () {
    return caches.match(url.pathname).then(function (hit) {
      return hit || new Response("离线，且没有缓存", {status: 503,
        headers: {"Content-Type": "text/plain; charset=utf-8"}});
    });
  }));
});
