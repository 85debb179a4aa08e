#!/usr/bin/env bash
# Installs the system tools the tests and benchmarks drive, from Debian's packages, when they
# are missing: chromium (the real-browser test of Swagger UI), wrk (load tests) and postgresql
# (the prediction store's e2e tests start a throwaway PostgreSQL server of their own), and
# h2load (nghttp2-client: the gRPC/REST benchmark's load generator, bench/grpc.py).
# Usage: scripts/ensure-test-tools.sh [chromium] [wrk] [postgresql] [h2load]
#        (default: chromium, wrk, postgresql)
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(chromium wrk postgresql)
missing=()
for tool in "${wanted[@]}"; do
  if [ "$tool" = postgresql ]; then
    # Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<major>/bin.
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=("$tool")
  elif [ "$tool" = h2load ]; then
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
  else
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  fi
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
