#!/usr/bin/env bash
# Installs the official Python clients used by tests/it/clients.rs (elasticsearch-py 8,
# elasticsearch-py 9, opensearch-py 3; and the Prometheus client whose parser tests/it/metrics.rs
# uses) into the same cache directory as the test backends, one
# Python venv per client set, from the pinned, hash-checked lists in
# tests/clients/requirements-*.txt; and the official Node client used by tests/it/node_client.rs
# (@elastic/elasticsearch 8.15.3) with `npm ci` from tests/clients/node/package-lock.json (pinned
# versions, sha512 integrity checked by npm, no install scripts run).
#
#   cache: $ESGATE_TEST_CACHE, else $HOME/.cache/esgate-tests
#   layout: <cache>/clients-<set>-<first 16 hex of the list's sha256>/ (complete venvs only), so
#           editing a requirements file installs a fresh venv instead of reusing a stale one;
#           <cache>/clients-node-<first 16 hex of package-lock.json's sha256>/node_modules
#
# Safe to run concurrently with itself, with install-test-backends.sh and with the Rust harness
# (tests/it/support/python.rs): all take an exclusive flock(2) on <cache>/install.lock, install into
# <cache>/tmp-* and rename the finished venv into place. The hashes are those of pure-Python
# wheels; python-dateutil 4 needs Python >= 3.11.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/../tests/clients"
CACHE="${ESGATE_TEST_CACHE:-${HOME:?HOME or ESGATE_TEST_CACHE must be set}/.cache/esgate-tests}"
PYTHON="${PYTHON:-python3}"
SETS=(es8 es9 opensearch metrics)

mkdir -p "$CACHE"
exec 9>"$CACHE/install.lock"
flock 9

TMP_DIRS=()
cleanup() { for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

install_one() {
  local set="$1"
  local reqs="$REQS/requirements-$set.txt"
  local digest
  digest="$(sha256sum "$reqs" | cut -c1-16)"
  local final="$CACHE/clients-$set-$digest"
  if [ -x "$final/bin/python" ]; then
    echo "install-test-clients: $set already in $final"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d "$CACHE/tmp-clients-$set-XXXXXX")"
  TMP_DIRS+=("$tmp")
  "$PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary :all: -r "$reqs"
  mv "$tmp/venv" "$final"
  echo "install-test-clients: installed $set into $final"
}

install_node() {
  local lock="$REQS/node/package-lock.json"
  local digest
  digest="$(sha256sum "$lock" | cut -c1-16)"
  local final="$CACHE/clients-node-$digest"
  if [ -d "$final/node_modules/@elastic/elasticsearch" ]; then
    echo "install-test-clients: node already in $final"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d "$CACHE/tmp-clients-node-XXXXXX")"
  TMP_DIRS+=("$tmp")
  mkdir "$tmp/node"
  cp "$REQS/node/package.json" "$lock" "$tmp/node/"
  (cd "$tmp/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  mv "$tmp/node" "$final"
  echo "install-test-clients: installed node into $final"
}

for set in "${SETS[@]}"; do
  install_one "$set"
done
install_node
