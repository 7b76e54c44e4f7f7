# Sourced by scripts/bootstrap.sh and scripts/test-versions.
# venv_install VENV_PYTHON ARGS...: pip install into a virtualenv, compiled to
# bytecode, through uv when it installs (several times faster, and a second
# virtualenv comes from its cache in seconds), else through pip itself. Also
# used by test-versions.
venv_install() {
  local python="$1" bin
  shift
  bin="$(dirname "$python")"
  if [ ! -x "$bin/uv" ] && [ -z "${DRC_NO_UV:-}" ]; then
    "$python" -m pip install -q uv 2>&1 | grep -v "^WARNING: Location" || true
  fi
  if [ -x "$bin/uv" ] && [ -z "${DRC_NO_UV:-}" ]; then
    # --compile-bytecode: uv writes no .pyc by default, and where
    # PYTHONDONTWRITEBYTECODE is set (CI, many images) Python then compiles
    # Django and Celery again at every start: 1.2 s of CPU for each manage.py
    # or worker process instead of 0.1 s (pip compiles at install by default).
    "$bin/uv" pip install -q --compile-bytecode --python "$python" "$@" && return 0
    echo "uv could not install; trying pip" >&2
  fi
  local rc=0
  "$python" -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } || rc=$?
  return "$rc"
}

# venv_compile VENV_PYTHON: bytecode for a virtualenv's packages that an
# earlier install left without (an install skips what is already in place).
venv_compile() {
  local python="$1" site
  site="$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  "$python" -m compileall -q -j 0 "$site" >/dev/null || true
}
