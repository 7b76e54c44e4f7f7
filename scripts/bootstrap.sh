# Sourced by scripts/demo and scripts/test: a project virtualenv with the package installed.
# Re-installs only when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DRC_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
EXTRAS="${1:-}"

apt_install() {
  # Debian packages, only when missing; root or sudo.
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${_DRC_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    _DRC_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "==> installing python3-venv"
  apt_install python3-venv python3-pip
fi
source "$ROOT/scripts/venv-install.sh"

if [ ! -x "$PY" ]; then
  echo "==> creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.drc-installed${EXTRAS:+-$EXTRAS}"
# The marker after pyproject.toml changes when what an install does changes.
want="$( (cat "$ROOT/pyproject.toml"; echo "bytecode") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing django-rclone-celery${EXTRAS:+[$EXTRAS]} into $VENV"
  venv_install "$PY" -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  [ ! -f "$stamp" ] || venv_compile "$PY"
  "$PY" -c "import django_rclone_celery" # fail loudly if the install did not work
  echo "$want" > "$stamp"
fi
# The project's own modules are an editable install, which no install
# compiles; where PYTHONDONTWRITEBYTECODE is set, every manage.py and worker
# start compiled them again (0.1-0.15 s each).
own=("$ROOT/django_rclone_celery" "$ROOT/example_project")
[ ! -d "$ROOT/tests" ] || own+=("$ROOT/tests")
venv_compile "$PY" "${own[@]}"
export PATH="$VENV/bin:$PATH"
