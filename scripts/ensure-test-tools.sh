#!/usr/bin/env bash
# Installs the system tools the tests and benchmarks drive, from Debian's packages, when they
# are missing: chromium (the real-browser test of Swagger UI) and wrk (load tests).
# Usage: scripts/ensure-test-tools.sh [chromium] [wrk]   (default: both)
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(chromium wrk)
missing=()
for tool in "${wanted[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}
