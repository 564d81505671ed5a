#!/usr/bin/env bash
# The live view (/ui) in headless Chromium against three agent processes (std-adapter/ui-test).
# Installs Chromium (Debian's package) and playwright-core (npm) when it can; prints SKIPPED with the
# reason when it cannot. Honours CARGO_TARGET_DIR; runs from any directory.
#   bash std-adapter/scripts/ui-test.sh [--screenshot FILE]
set -euo pipefail
[ -n "${CARGO_TARGET_DIR:-}" ] && export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
shot="${TMPDIR:-/tmp}/tidings-ui.png"
[ "${1:-}" = "--screenshot" ] && shot="$(realpath -m "$2")"
skip() { echo "SKIPPED ui test: $*"; exit 0; }
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }) \
      || skip "Debian's chromium package could not be installed"
  else
    skip "no chromium, and no apt-get as root to install it"
  fi
fi
command -v node >/dev/null && command -v npm >/dev/null || skip "no node and npm to run playwright-core"
cd "$here/ui-test"
if [ ! -d node_modules/playwright-core ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent >/dev/null 2>&1 \
    || skip "playwright-core could not be installed from npm"
fi
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build -q --release -p tidings-tokio --bin tidings)
TIDINGS_BIN="$target/release/tidings" CHROMIUM="$(command -v chromium)" SCREENSHOT="$shot" node test.mjs
