#!/usr/bin/env bash
# Compiles the firmware's C core (compile only, warnings are errors) for the host and for the
# two board families: ESP8266 (xtensa-lx106) and ESP32-C3 (32-bit RISC-V). Installs the
# Debian cross compilers first when they are missing. Runnable from any directory.
#   ci/firmware-cross.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
core="$root/firmware/core"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# command -> Debian package that provides it
declare -A packages=(
  [gcc]=gcc
  [xtensa-lx106-elf-gcc]=gcc-xtensa-lx106
  [riscv64-unknown-elf-gcc]=gcc-riscv64-unknown-elf
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
# The RISC-V compiler ships without a C library; picolibc gives it <stdint.h> and friends.
picolibc_specs=/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs
[ -f "$picolibc_specs" ] || missing+=(picolibc-riscv64-unknown-elf)

if ((${#missing[@]})); then
  echo "firmware-cross: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "firmware-cross: $cmd is still missing after installing ${packages[$cmd]}" >&2
    exit 1
  }
done
[ -f "$picolibc_specs" ] || {
  echo "firmware-cross: $picolibc_specs is still missing after installing picolibc" >&2
  exit 1
}

strict=(-std=c99 -Wall -Wextra -Werror -pedantic -Os)

# name, compiler, extra flags; one line per target
build() {
  local name="$1" compiler="$2"
  shift 2
  "$compiler" "${strict[@]}" "$@" -I "$core" -c "$core/light_controller.c" -o "$out/$name.o"
  echo "firmware-cross: $name ok ($compiler${*:+ $*})"
}

build host gcc
# The Debian xtensa toolchain has no C library at all; the core needs none (freestanding).
build esp8266-xtensa-lx106 xtensa-lx106-elf-gcc -ffreestanding -mlongcalls
build esp32c3-riscv32 riscv64-unknown-elf-gcc --specs="$picolibc_specs" -march=rv32imc -mabi=ilp32
