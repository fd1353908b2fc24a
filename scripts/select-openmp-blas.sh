#!/usr/bin/env bash
# Points libblas.so.3, liblapack.so.3 and libopenblas.so.0 (each a Debian alternative) at
# OpenBLAS's OpenMP build (libopenblas0-openmp).
# LibTorch parallelizes with OpenMP; OpenBLAS's pthreads build keeps a second pool of spinning
# threads that competes with it for the cores. On the 2-core development machine that made the
# LibTorch forward and a training step about 2x slower (docs/operations.md, "Threads and BLAS").
# Idempotent; run as root or with sudo available.
set -euo pipefail
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target=$(dpkg -L libopenblas0-openmp | grep "/openblas-openmp/$lib\$" | head -1)
  if [[ -z $target ]]; then
    echo "select-openmp-blas: libopenblas0-openmp ships no $lib" >&2
    exit 1
  fi
  # The alternative's name carries the multiarch directory: libblas.so.3-x86_64-linux-gnu.
  group="$lib-$(basename "$(dirname "$(dirname "$target")")")"
  if [[ $(update-alternatives --query "$group" | sed -n 's/^Value: //p') != "$target" ]]; then
    $SUDO update-alternatives --set "$group" "$target"
  fi
done
