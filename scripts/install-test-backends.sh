#!/usr/bin/env bash
# Installs the two Elasticsearch-compatible test backends (see shared docs backend.md) into a
# cache directory outside the repository, each into its own Python venv, pinned and hash-checked.
#
#   cache: $ESGATE_TEST_CACHE, else $HOME/.cache/esgate-tests
#   layout: <cache>/osmem-server-0.1.6/ and <cache>/noida-db-0.2.3/ (complete venvs only)
#
# Safe to run concurrently with itself and with the Rust harness (tests/it/support/backend.rs): both
# take an exclusive flock(2) on <cache>/install.lock, install into <cache>/tmp-* and rename the
# finished venv into place, so a half-finished install is never visible under its final name.
# The hashes are those of the linux x86_64 wheels; on another platform pip refuses to install.
set -euo pipefail

CACHE="${ESGATE_TEST_CACHE:-${HOME:?HOME or ESGATE_TEST_CACHE must be set}/.cache/esgate-tests}"
PYTHON="${PYTHON:-python3}"

# name version sha256 binary-path-inside-site-packages
BACKENDS=(
  "osmem-server 0.1.6 24c862de01ab1c6dd1564284933fdc4f774494a41e071676914f86d82fdbef40 osmem_server/bin/osmem-server"
  "noida-db 0.2.3 40a2fb15567e3d344e7483df62bb439e7d64ac6fb232f4f223554aed58204f82 noida_db/noida-db"
)

if [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
  echo "install-test-backends: the pinned hashes are for the linux x86_64 wheels;" \
    "this is $(uname -s)/$(uname -m)" >&2
  exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/install.lock"
flock 9

# Temporary venvs of a failed or interrupted run are removed on exit.
TMP_DIRS=()
cleanup() { for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

install_one() {
  local name="$1" version="$2" sha="$3" rel="$4"
  local final="$CACHE/$name-$version"
  if [ -d "$final" ]; then
    echo "install-test-backends: $name $version already in $final"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d "$CACHE/tmp-$name-XXXXXX")"
  TMP_DIRS+=("$tmp")
  "$PYTHON" -m venv "$tmp/venv"
  printf '%s==%s --hash=sha256:%s\n' "$name" "$version" "$sha" >"$tmp/requirements.txt"
  "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary :all: --no-deps -r "$tmp/requirements.txt"
  local bin
  bin="$(ls -d "$tmp"/venv/lib/python*/site-packages/"$rel" 2>/dev/null | head -n1)"
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "install-test-backends: $name installed but $rel is missing or not executable" >&2
    return 1
  fi
  mv "$tmp/venv" "$final"
  echo "install-test-backends: installed $name $version into $final"
}

for spec in "${BACKENDS[@]}"; do
  # shellcheck disable=SC2086
  install_one $spec
done
