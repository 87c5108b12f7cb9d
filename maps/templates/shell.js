(function () {
  "use strict";
  var cfg = window.cgShellConfig, shell = document.getElementById("cg-shell");
  if (!shell) { return; }
  var button = shell.querySelector(".cg-shell-menu");
  var nav = shell.querySelector(".cg-shell-nav");

  function setOpen(open) {
    shell.classList.toggle("cg-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.setAttribute("aria-label", open ? "关闭菜单" : "打开菜单");
  }
  button.addEventListener("click", function () {
    setOpen(!shell.classList.contains("cg-open"));
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { setOpen(false); }
  });

  function markCurrent() {
    var here = window.location.pathname;
    Array.prototype.forEach.call(nav.querySelectorAll("a"), function (a) {
      var path = a.getAttribute("href");
      if (here === path || here.indexOf(path + "/") === 0) {
        a.setAttribute("aria-current", "page");
      }
      a.addEventListener("click", function () { setOpen(false); });
    });
  }

  // A page cached for every user arrives without them: ask the API who is signed in.
  function fill(me) {
    if (me.city) {
      shell.querySelector(".cg-shell-cityname").textContent = me.city;
    }
    shell.querySelector(".cg-shell-name").textContent = me.display_name;
    shell.querySelector(".cg-shell-role").textContent = me.role_zh;
    nav.textContent = "";
    (me.nav || []).forEach(function (page) {
      var a = document.createElement("a");
      a.setAttribute("href", page.path);
      a.textContent = page.label;
      nav.appendChild(a);
    });
    shell.setAttribute("data-state", "ready");
    markCurrent();
  }
  if (shell.getAttribute("data-state") === "pending") {
    fetch(cfg.me, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (me) { if (me) { fill(me); } })
      .catch(function () { shell.setAttribute("data-state", "offline"); });
  } else {
    markCurrent();
  }

  // Sign out: the API revokes the token and clears the cookie (same-origin POST, see csrf.py).
  shell.querySelector(".cg-shell-logout").addEventListener("click", function () {
    fetch(cfg.logout, {method: "POST", credentials: "same-origin"})
      .finally(function () { window.location.assign(cfg.login); });
  });
})();
