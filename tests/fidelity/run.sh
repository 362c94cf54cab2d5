#!/usr/bin/env bash
# Real-client fidelity checks: jsforce and simple-salesforce against a salesforce-sim binary.
# Usage: tests/fidelity/run.sh path/to/salesforce-sim
set -euo pipefail

sim="$(realpath "${1:?usage: $0 path/to/salesforce-sim}")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$(mktemp -d -t tandem-fidelity.XXXXXX)"
sim_pids=()

cleanup() {
  for pid in "${sim_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

step() { printf '\n=== %s ===\n' "$*"; }

install_clients() {
  cp "$here/package.json" "$here/jsforce.mjs" "$scratch/"
  (cd "$scratch" && npm install --no-audit --no-fund --loglevel=error)
  python3 -m venv "$scratch/venv"
  "$scratch/venv/bin/pip" install --quiet -r "$here/requirements.txt"
}

make_jwt_keys() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$scratch/jwt-private.pem" 2>/dev/null
  openssl pkey -in "$scratch/jwt-private.pem" -pubout -out "$scratch/jwt-public.pem"
}

# start_sim NAME ARGS...: starts the binary on a port of its choosing; sets NAME_url and NAME_log.
start_sim() {
  local name="$1" log="$scratch/$1.log" url=""
  shift
  "$sim" --port 0 "$@" >"$log" 2>&1 &
  sim_pids+=("$!")
  for _ in $(seq 300); do
    url="$(sed -n 's/^salesforce-sim listening on //p' "$log")"
    [ -n "$url" ] && curl -sf "$url/services/data" >/dev/null && break
    url=""
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "salesforce-sim ($name) did not answer:" >&2
    cat "$log" >&2
    exit 1
  fi
  printf -v "${name}_url" '%s' "$url"
  printf -v "${name}_log" '%s' "$log"
  echo "$name simulator: $url"
}

run_check() {
  local name="$1"
  shift
  step "$name"
  if env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
    SIM_URL="$main_url" EXPIRY_SIM_URL="$expiry_url" JWT_PRIVATE_KEY="$scratch/jwt-private.pem" \
    EXPIRY_REFRESH_TOKEN="$(sed -n 's/^refresh_token=//p' "$expiry_log")" "$@"; then
    return 0
  fi
  echo "$name: FAILED" >&2
  failed+=("$name")
}

step "install jsforce and simple-salesforce into $scratch"
install_clients
make_jwt_keys

step "start simulators"
start_sim main --records 2500 --jwt-public-key "$scratch/jwt-public.pem"
start_sim expiry --records 0 --token-max-requests 3

failed=()
run_check "jsforce $(cd "$scratch" && node -p 'require("jsforce/package.json").version')" \
  bash -c 'cd "$1" && node jsforce.mjs' _ "$scratch"
run_check "simple-salesforce $("$scratch/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("simple-salesforce"))')" \
  "$scratch/venv/bin/python" "$here/simple_salesforce_check.py"

if [ "${#failed[@]}" -gt 0 ]; then
  echo >&2
  echo "fidelity checks failed: ${failed[*]}" >&2
  exit 1
fi
echo
echo "fidelity checks passed"
