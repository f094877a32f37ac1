#!/usr/bin/env bash
# install.sh — installs the npm packages that test_http_clients.py drives, exactly as pinned
# in package-lock.json, into test/integration/node/node_modules (`npm ci`).  Called once per
# test session by http_support.node_client(); safe to run by hand.  Needs node and npm
# (test/deps.sh) and the npm registry.  It fails, never skips: CI must run these clients.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v node >/dev/null || { echo "install.sh: node is not installed (test/deps.sh)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install.sh: npm is not installed (test/deps.sh)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
