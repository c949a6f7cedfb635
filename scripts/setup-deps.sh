#!/usr/bin/env bash
# Installs the Debian packages that dcdm needs to build, test and run; only those missing.
# Idempotent and silent when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache clang libomp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libeigen3-dev liblapacke-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libstb-dev
  libtorch-dev
  libhypre-dev libopenmpi-dev openmpi-bin petsc-dev
  libopenvdb-dev libboost-iostreams-dev libassimp-dev
  gnuplot-nox doxygen
  ffmpeg
  pybind11-dev python3-dev python3-numpy python3-scipy python3-pytest python3-matplotlib python3-venv python3-pip
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-deps: done"
