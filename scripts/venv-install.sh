# Sourced by scripts/bootstrap.sh and scripts/test-versions.
# venv_install VENV_PYTHON ARGS...: pip install into a virtualenv, compiled to
# bytecode, through uv when it installs (several times faster, and a second
# virtualenv comes from its cache in seconds), else through pip itself. Also
# used by test-versions.
venv_install() {
  local python="$1" uv
  shift
  uv="$(venv_uv "$python")"
  if [ -z "$uv" ] && [ -z "${DRC_NO_UV:-}" ]; then
    "$python" -m pip install -q uv 2>&1 | grep -v "^WARNING: Location" || true
    uv="$(venv_uv "$python")"
  fi
  if [ -n "$uv" ] && [ -z "${DRC_NO_UV:-}" ]; then
    # --compile-bytecode: uv writes no .pyc by default, and where
    # PYTHONDONTWRITEBYTECODE is set (CI, many images) Python then compiles
    # Django and Celery again at every start: 1.2 s of CPU for each manage.py
    # or worker process instead of 0.1 s (pip compiles at install by default).
    # DRC_COMPILE_BYTECODE=0: for a virtualenv whose users write their own
    # (test-versions runs its pytest without PYTHONDONTWRITEBYTECODE).
    local compile="--compile-bytecode"
    [ "${DRC_COMPILE_BYTECODE:-1}" != 0 ] || compile=""
    # shellcheck disable=SC2086  # compile is one flag or none
    "$uv" pip install -q $compile --python "$python" "$@" && return 0
    echo "uv could not install; trying pip" >&2
  fi
  local rc=0
  "$python" -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } || rc=$?
  return "$rc"
}

# venv_uv VENV_PYTHON: the virtualenv's own uv, else the project virtualenv's
# (the version pairs' virtualenvs are made without pip), else nothing.
venv_uv() {
  local bin project
  bin="$(dirname "$1")"
  project="${VENV:-$ROOT/.venv}/bin/uv"
  if [ -x "$bin/uv" ]; then
    echo "$bin/uv"
  elif [ -x "$project" ]; then
    echo "$project"
  fi
}

# venv_compile VENV_PYTHON [DIR...]: bytecode for the DIRs, by default the
# virtualenv's packages that an earlier install left without (an install skips
# what is already in place). What is up to date is skipped.
venv_compile() {
  local python="$1"
  shift
  [ "$#" -gt 0 ] || set -- "$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  "$python" -m compileall -q -j 0 "$@" >/dev/null || true
}
