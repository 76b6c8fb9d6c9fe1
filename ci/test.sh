#!/usr/bin/env bash
# Runs every test of the workspace, after installing the outside tools the interop tests
# use when they are missing. Safe to run again: installed tools are left alone.
#   ci/test.sh               # all tests
#   ci/test.sh -- --nocapture  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# The firmware crate builds the Arduino sketch for the host with a C++ compiler.
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
# Serves a virtual chip over RFC 2217, as a bench host serves its boards.
command -v ser2net >/dev/null 2>&1 || missing+=(ser2net)
# Namespaces the tests make themselves: a full disk (mount), a bind beyond loopback (net).
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The Paho interoperability suite (../shared/conformance) needs python3 alone.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The explore test applies fixtures/mutants/*.patch to a copy of the firmware core.
command -v patch >/dev/null 2>&1 || missing+=(patch)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# The HTML report's tests open it in headless Chromium (HIL_CHROMIUM names another).
command -v "${HIL_CHROMIUM:-chromium}" >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  echo "ci/test.sh: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# mosquitto's package starts a system broker on 1883; the tests start their own brokers
# on free ports and never need it.

# esptool, the reference flasher the virtual-chip and flashing tests check hil against.
venv="${HIL_VENV:-$HOME/.cache/hil/venv}"
if [ ! -x "$venv/bin/esptool" ]; then
  echo "ci/test.sh: installing esptool into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet esptool==5.6.0
fi
export HIL_ESPTOOL="$venv/bin/esptool"
# labgrid (coordinator, exporter, client): the board-farm tests run a farm on loopback.
if [ ! -x "$venv/bin/labgrid-client" ]; then
  echo "ci/test.sh: installing labgrid into $venv"
  "$venv/bin/pip" install --quiet labgrid==26.0.1
fi
export HIL_LABGRID_CLIENT="$venv/bin/labgrid-client"

if [ "${1:-}" = "--" ]; then shift; fi
exec cargo test --workspace --all-targets "$@"
