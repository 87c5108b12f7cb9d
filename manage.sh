#!/usr/bin/env bash
# citygrid's two commands (see README):
#   ./manage.sh run    set everything up, start the private PostGIS, load the demo city, serve :8000
#   ./manage.sh test   set everything up against a throwaway database and run every check and test
# Also: ./manage.sh setup   (system packages + virtualenv only)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${CITYGRID_VENV:-.venv}
EXTERNAL_DB=${CITYGRID_DATABASE_URL:-${DATABASE_URL:-}}

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_system() {
  local pkgs=()
  # The private cluster needs the server and PostGIS; an external database needs neither.
  [ -z "$EXTERNAL_DB" ] && pkgs+=(postgresql-15 postgresql-15-postgis-3)
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
  if [ "${1:-}" = "test" ]; then
    # Headless browser tests of the map pages, and a CJK font so screenshots show Chinese;
    # GDAL's ogrinfo reads the OGC API as QGIS would.
    pkgs+=(chromium fonts-noto-cjk gdal-bin)
    # bench/route_load.py drives POST /route at a fixed rate with hey (a native load generator).
    pkgs+=(hey)
  fi
  [ ${#pkgs[@]} -gt 0 ] && apt_install "${pkgs[@]}"
  return 0
}

setup_python() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "citygrid needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || { say "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
  # Reinstall only when the dependency list changed, so a second run is fast.
  local stamp="$VENV/.citygrid-installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

citygrid() { "$VENV/bin/citygrid" "$@"; }

case "${1:-}" in
  setup)
    setup_system test; setup_python ;;
  run)
    setup_system run; setup_python
    citygrid db up
    citygrid db migrate
    citygrid demo load
    citygrid demo users   # one account per role, random passwords in .citygrid/demo-users.txt
    say "serving http://127.0.0.1:${CITYGRID_API_PORT:-8000}/  (map: /map, API docs: /docs)"
    exec "$VENV/bin/citygrid" serve ;;
  test)
    setup_system test; setup_python
    citygrid db up
    say "static checks: ruff, mypy, import-linter"
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy"
    "$VENV/bin/lint-imports"
    say "tests (throwaway database)"
    shift
    # Browser tests fail instead of skipping when Chromium is missing (see tests/support/browser.py).
    CITYGRID_REQUIRE_BROWSER=1 exec "$VENV/bin/pytest" "$@" ;;
  *)
    echo "usage: ./manage.sh run | test [pytest args] | setup" >&2; exit 2 ;;
esac
