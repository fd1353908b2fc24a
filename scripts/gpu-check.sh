#!/usr/bin/env bash
# Builds bertd against PyPI's CUDA LibTorch (the `torch` wheel) with CUDA and NCCL on, in a build
# directory of its own, and runs that build's tests (docs/training.md, "Building the GPU path").
#
#   scripts/gpu-check.sh --build-only   # configure, build, the CPU tests (ctest -L unit), and the
#                                       # gpu-labelled tests, which skip where no GPU is visible
#   scripts/gpu-check.sh                # the same, then the gpu-labelled tests again with
#                                       # BERTD_REQUIRE_CUDA_DEVICE=1: a skip fails (GPU machines)
#
# Environment:
#   BERTD_GPU_VENV   the virtual environment holding the wheel, outside the clone
#                    (default ~/.cache/bertd/gpu-venv; about 5.5 GiB with its nvidia-* wheels;
#                    the build directory takes about 13 GiB more)
#   BERTD_TORCH_VERSION  the wheel (default 2.15.0: CUDA 13.2, C++11 ABI like Debian's gRPC/Abseil)
#   BUILD_DIR        default build-gpu
#   JOBS             ninja's and ctest's parallelism (default 2); builds and tests run at nice 19
#   CUDA_HOME        the CUDA toolkit (nvcc, headers); default: the nvcc on PATH, /usr/local/cuda
#   TORCH_CUDA_ARCH_LIST  what LibTorch's CMake passes to nvcc (bertd has no .cu files; default 9.0)
#   BERTD_GPU_CCACHE_DIR  this build's ccache (default: beside the venv, ~/.cache/bertd/ccache-gpu)
#   CTEST_ARGS       extra ctest arguments, e.g. "-R Checkpoint"
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
case "${1:-}" in
  --build-only) build_only=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu-check.sh [--build-only]" >&2; exit 2 ;;
esac

venv=${BERTD_GPU_VENV:-$HOME/.cache/bertd/gpu-venv}
torch_version=${BERTD_TORCH_VERSION:-2.15.0}
build=${BUILD_DIR:-build-gpu}
jobs=${JOBS:-2}
started=$SECONDS
say() { printf 'gpu-check [%4ds]: %s\n' $((SECONDS - started)) "$*"; }
die() { printf 'gpu-check: %s\n' "$*" >&2; exit 1; }

# Fails unless folder $1's file system has $2 GiB free, for $3.
need_space() {
  local avail_kib
  avail_kib=$(df -Pk "$1" | awk 'NR == 2 {print $4}')
  ((avail_kib >= $2 * 1024 * 1024)) ||
    die "$1 has $((avail_kib / 1024 / 1024)) GiB free; $3 needs $2 GiB"
}

./scripts/install-deps.sh

# The CUDA toolkit: LibTorch's CMake enables the CUDA language and finds CUDAToolkit with nvcc.
if [[ -z ${CUDA_HOME:-} ]]; then
  if nvcc=$(command -v nvcc); then
    CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    CUDA_HOME=/usr/local/cuda
  else
    die "no CUDA toolkit: nvcc is not on PATH nor in /usr/local/cuda/bin (set CUDA_HOME)"
  fi
fi
[[ -x $CUDA_HOME/bin/nvcc ]] || die "CUDA_HOME=$CUDA_HOME has no bin/nvcc"
export CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
say "CUDA toolkit $CUDA_HOME ($("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"

# The wheel, in a virtual environment outside the clone.
py=$venv/bin/python
installed() { "$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true; }
if [[ ! -x $py || $(installed) != "$torch_version" ]]; then
  mkdir -p "$(dirname "$venv")"
  need_space "$(dirname "$venv")" 7 "the wheel and its CUDA libraries (about 5.5 GiB)"
  [[ -x $py ]] || python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  mkdir -p "$build"
  say "pip install torch==$torch_version into $venv (log: $build/pip-install.log)"
  if ! nice -n 19 "$py" -m pip install "torch==$torch_version" >"$build/pip-install.log" 2>&1; then
    tail -n 20 "$build/pip-install.log" >&2
    die "pip could not install torch==$torch_version (see $build/pip-install.log)"
  fi
fi
read -r version cuda abi prefix < <("$py" -W ignore -c 'import torch, torch.utils
print(torch.__version__, torch.version.cuda, int(torch.compiled_with_cxx11_abi()), torch.utils.cmake_prefix_path)')
say "torch $version (CUDA $cuda, C++11 ABI: $abi) at $prefix"
[[ $cuda != None ]] || die "torch $version is a CPU-only wheel"
# Debian's gRPC, Abseil and protobuf use the C++11 ABI; a wheel without it cannot link with them.
[[ $abi == 1 ]] || die "torch $version uses the pre-C++11 ABI; pick a version whose wheel has it (BERTD_TORCH_VERSION)"

# TorchConfig.cmake finds libc10.so and libtorch.so with find_library, which would take Debian's
# 1.13 from /usr/lib: the wheel's root (torch/) goes first on the prefix path, and both are named.
torch_root=$(dirname "$(dirname "$prefix")")
site=$(dirname "$torch_root")
# The wheel's CUDA libraries (nvidia-* wheels, CUDA 13.2 for 2.15) rather than the toolkit's (13.0
# here): bertd links the wheel's cudart and NVRTC, and the linker resolves libtorch_cuda.so's own
# dependencies (NCCL, cuDNN, cuBLAS) in the wheel's folders first (-rpath-link): the toolkit's
# older libnccl.so.2 lacks symbols that LibTorch 2.15 needs (ncclCommGrow, ...).
cuda_libs=()
for lib in cudart nvrtc; do
  found=$(compgen -G "$site/nvidia/cu*/lib/lib$lib.so.*[0-9]" | head -n 1 || true)
  [[ -n $found ]] && cuda_libs+=("-DCUDA_${lib}_LIBRARY=$found")
  [[ -n $found && $lib == nvrtc ]] && cuda_libs+=("-DCUDA_NVRTC_LIB=$found")  # cached by cuda.cmake
done
rpath_link=$(compgen -G "$site/nvidia/*/lib" | paste -sd: - || true)

# Configure with CUDA and NCCL required: a LibTorch without them fails here, not silently.
say "configuring $build"
mkdir -p "$build"
# Twelve precompiled torch/torch.h headers of about 0.9 GB each (C++20, debug info) and the rest.
[[ -f $build/build.ninja ]] || need_space "$build" 15 "a first build of $build (about 13 GiB)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$torch_root;$prefix" \
  -Dc10_LIBRARY="$torch_root/lib/libc10.so" -DTORCH_LIBRARY="$torch_root/lib/libtorch.so" \
  -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_HOME" "${cuda_libs[@]}" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$torch_root/lib${rpath_link:+:$rpath_link}" \
  -DBERTD_WITH_CUDA=ON -DBERTD_WITH_NCCL=ON >"$build/configure.log" 2>&1 ||
  { tail -n 40 "$build/configure.log" >&2; die "configure failed (see $build/configure.log)"; }
grep -h '^-- bertd: LibTorch' "$build/configure.log" | sed 's/^-- /gpu-check: /'

# A ccache of its own: this build's objects (LibTorch 2.x headers, C++20) never hit the Debian
# build's, and would only push that build's entries out of the shared cache.
export CCACHE_DIR=${BERTD_GPU_CCACHE_DIR:-$(dirname "$venv")/ccache-gpu}
say "building (nice -n 19 ninja -j $jobs; ccache in $CCACHE_DIR)"
nice -n 19 ninja -C "$build" -j "$jobs"
say "built"

cd "$build"
# shellcheck disable=SC2086
nice -n 19 ctest -L unit --output-on-failure -j "$jobs" --timeout 900 ${CTEST_ARGS:-}
say "CPU tests (ctest -L unit) passed"
if ((build_only)); then
  # shellcheck disable=SC2086
  nice -n 19 ctest -L gpu --output-on-failure --timeout 900 ${CTEST_ARGS:-}
  say "done (--build-only: the gpu-labelled tests skip where no GPU is visible)"
else
  # shellcheck disable=SC2086
  BERTD_REQUIRE_CUDA_DEVICE=1 nice -n 19 ctest -L gpu --output-on-failure --timeout 900 ${CTEST_ARGS:-}
  say "done (the gpu-labelled tests ran on a GPU)"
fi
