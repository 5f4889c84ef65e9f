#!/usr/bin/env bash
# Install Debian's headless-capable Chromium if /usr/bin/chromium is missing.
# The browser tests (tests/browser/, mark `browser`) drive it with Playwright; Playwright's
# own browser download is not used (CI's machines cannot reach it), so never run
# `playwright install`. As root apt-get runs directly; otherwise through sudo if there is
# one. Without either the script fails, and so would the browser tests.
set -euo pipefail

CHROMIUM=${DESCENT_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  echo "Chromium: ready ($CHROMIUM)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "Chromium: NOT installed, and this user can neither run apt-get nor sudo." >&2
  echo "Install it as root: apt-get install -y chromium  (the browser tests need $CHROMIUM)" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium: NOT installed, and there is no apt-get here." >&2
  echo "Install Chromium so that $CHROMIUM exists (or set DESCENT_CHROMIUM to its path)." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium (the browser tests need it)"
# A fresh machine may have no package lists yet: update only when the package is unknown.
if ! apt-cache show chromium >/dev/null 2>&1; then
  "${SUDO[@]}" apt-get update -q
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium; then
  # Lists that are present but stale name versions the mirror no longer has.
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "Chromium: apt-get finished but $CHROMIUM is still missing." >&2
  exit 1
fi
echo "Chromium: ready ($CHROMIUM)"
