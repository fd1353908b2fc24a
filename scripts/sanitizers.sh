#!/usr/bin/env bash
# The unit and integration suites under sanitizers, each in a build directory of its own
# (docs/reliability.md, "Sanitizers"). Hours of CPU on 2 cores, so not part of `make test`.
#
#   scripts/sanitizers.sh address     # ASan + UBSan (-fno-sanitize-recover: UB aborts the test)
#   scripts/sanitizers.sh thread      # TSan
#   CTEST_ARGS="-R Batcher" scripts/sanitizers.sh thread
#   TARGETS="batcher_test jobs_test" scripts/sanitizers.sh thread   # build and run only these
#
# TSan needs every library whose locks guard our data to be instrumented. Debian's Abseil is not:
# absl::Mutex would look like no lock at all and every guarded field like a race. So the thread
# mode first builds Abseil from Debian's own source package (apt-get source abseil, with Debian's
# patches and options) with -fsanitize=thread into build-tsan/absl, and bertd (and gRPC, through
# the same sonames) load that one. OpenMP (libgomp, inside LibTorch and oneDNN) cannot be
# instrumented here; scripts/tsan.supp suppresses reports whose stacks run through it, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=${1:?usage: scripts/sanitizers.sh address|thread}
JOBS=${JOBS:-$(nproc)}

./scripts/install-deps.sh
case $mode in
  address)
    build=${BUILD_DIR:-build-asan}
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTD_SANITIZE=address,undefined
    # LibTorch keeps process-lifetime caches it never frees: not our leaks.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  thread)
    build=${BUILD_DIR:-build-tsan}
    absl_prefix=$ROOT/$build/absl
    if [[ ! -f $absl_prefix/lib/libabsl_synchronization.so ]]; then
      SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
      if ! apt-get source --print-uris abseil >/dev/null 2>&1; then
        # Debian's source packages come from the same archive as its binary ones.
        $SUDO tee /etc/apt/sources.list.d/bertd-debian-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        $SUDO apt-get update -qq
      fi
      src=$ROOT/$build/absl-src
      rm -rf "$src" && mkdir -p "$src"
      (cd "$src" && apt-get source -qq abseil >/dev/null)
      absl_dir=$(find "$src" -maxdepth 1 -type d -name 'abseil-*' | head -1)
      cmake -S "$absl_dir" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF \
        -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_INSTALL_PREFIX="$absl_prefix" \
        -DCMAKE_INSTALL_LIBDIR=lib
      cmake --build "$src/build" -j "$JOBS" --target install
    fi
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTD_SANITIZE=thread \
      -DCMAKE_PREFIX_PATH="$absl_prefix" -DCMAKE_BUILD_RPATH="$absl_prefix/lib"
    export LD_LIBRARY_PATH=$absl_prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/scripts/tsan.supp}
    ;;
  *) echo "mode: expected address or thread, got $mode" >&2; exit 2 ;;
esac

if [[ -n ${TARGETS:-} ]]; then
  # A subset: build these test executables only and run each whole.
  cmake --build "$build" -j "$JOBS" --target $TARGETS
  for target in $TARGETS; do
    exe=$(find "$build/tests" -type f -name "$target" -perm -u+x | head -1)
    echo "== $target"
    "$exe" --gtest_brief=1
  done
  exit 0
fi
cmake --build "$build" -j "$JOBS"
# Sanitized binaries are slower: generous per-test time, and the servers' children inherit the
# options above.
(cd "$build" && ctest -L 'unit|integration' --output-on-failure --timeout 1800 ${CTEST_ARGS:-})
