#!/usr/bin/env bash
# The unit and integration suites under sanitizers, each in a build directory of its own
# (docs/reliability.md, "Sanitizers"). Hours of CPU on 2 cores, so not part of `make test`.
#
#   scripts/sanitizers.sh address     # ASan + UBSan (-fno-sanitize-recover: UB aborts the test)
#   scripts/sanitizers.sh thread      # TSan
#   CTEST_ARGS="-R Batcher" scripts/sanitizers.sh thread
#   TARGETS="batcher_test jobs_test" scripts/sanitizers.sh thread   # build and run only these
#
# TSan needs the libraries that order bertd's threads instrumented. Debian's are not: every
# absl::Mutex would look like no lock at all, gRPC's hand-offs between its threads would make
# every message buffer look raced, and protobuf's headers change a class's layout under TSan.
# So the thread mode first builds Abseil, protobuf and gRPC from Debian's own source packages
# (apt-get source, with Debian's patches) with -fsanitize=thread into build-tsan/, and bertd
# loads those under the system sonames. LibTorch, Gloo, OpenBLAS, oneDNN and OpenMP cannot be
# rebuilt here; scripts/tsan.supp suppresses reports through them and says what that hides.
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
    # gRPC and protobuf built with TSan, loaded in place of Debian's under the same sonames.
    runtime_lib=$ROOT/$build/tsan-runtime/lib
    flags="-O1 -g1 -DNDEBUG -fsanitize=thread"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    # Unpacks Debian's source package $1 (with Debian's patches) under $2; prints its directory.
    debian_source() {
      if ! apt-get source --print-uris "$1" >/dev/null 2>&1; then
        # Debian's source packages come from the same archive as its binary ones.
        $SUDO tee /etc/apt/sources.list.d/bertd-debian-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        $SUDO apt-get update -qq >&2
      fi
      rm -rf "$2" && mkdir -p "$2"
      (cd "$2" && apt-get source -qq "$1" >/dev/null 2>&1)
      find "$2" -mindepth 1 -maxdepth 1 -type d | head -1
    }
    if [[ ! -f $absl_prefix/lib/libabsl_synchronization.so ]]; then
      src=$(debian_source abseil "$ROOT/$build/absl-src")
      cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF \
        -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_INSTALL_PREFIX="$absl_prefix" \
        -DCMAKE_INSTALL_LIBDIR=lib
      cmake --build "$src/build" -j "$JOBS" --target install
    fi
    # protobuf's headers give MapFieldBase two more members under TSan (map_field.h), so bertd's
    # instrumented generated code and Debian's libprotobuf would disagree on the layout of every
    # message with a map field (Job.eval_metrics: the server crashed serializing a SubmitJob
    # reply). Built from Debian's source with the same flags, the two agree again (~1 minute).
    if [[ ! -f $runtime_lib/libprotobuf.so.32 ]]; then
      src=$(debian_source protobuf "$ROOT/$build/protobuf-src")
      cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_STANDARD=17 \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -Dprotobuf_BUILD_SHARED_LIBS=ON \
        -Dprotobuf_BUILD_TESTS=OFF -Dprotobuf_BUILD_PROTOC_BINARIES=OFF -Dprotobuf_WITH_ZLIB=ON
      cmake --build "$src/build" -j "$JOBS" --target libprotobuf
      mkdir -p "$runtime_lib"
      cp -P "$src"/build/libprotobuf.so.3* "$runtime_lib/"
    fi
    # gRPC hands completion-queue events, slices and call arenas between its threads with its own
    # atomics; uninstrumented, TSan misses those hand-offs and reports the message buffers bertd
    # reads after one. bertd builds against the system headers (same version) and loads these at
    # run time. Only libgrpc++ and what it needs (~850 steps, about 5 minutes on 2 cores);
    # libgrpc++_reflection stays Debian's.
    if [[ ! -f $runtime_lib/libgrpc++.so.1.51 ]]; then
      src=$(debian_source grpc "$ROOT/$build/grpc-src")
      cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_STANDARD=17 \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DBUILD_SHARED_LIBS=ON \
        -DCMAKE_PREFIX_PATH="$absl_prefix" -DgRPC_BUILD_TESTS=OFF -DgRPC_BUILD_CODEGEN=OFF \
        -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BENCHMARK_PROVIDER=none \
        -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package \
        -DgRPC_PROTOBUF_PROVIDER=package -DgRPC_RE2_PROVIDER=package \
        -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
        -DProtobuf_PROTOC_LIBRARY=/usr/lib/x86_64-linux-gnu/libprotoc.so.32
      cmake --build "$src/build" -j "$JOBS" --target grpc++
      mkdir -p "$runtime_lib"
      cp -P "$src"/build/lib{grpc,gpr,upb,address_sorting}.so.29* "$src"/build/libgrpc++.so.1.51* \
        "$runtime_lib/"
    fi
    # An RPATH (not RUNPATH, not LD_LIBRARY_PATH) reaches every library the process loads and no
    # child that is not ours: the Python reference a test runs must keep Debian's protobuf.
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTD_SANITIZE=thread \
      -DCMAKE_PREFIX_PATH="$absl_prefix" -DCMAKE_BUILD_RPATH="$runtime_lib;$absl_prefix/lib" \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
      -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags
    # Reports go to files, one per process: a server's, worker's or bertctl's report is kept even
    # when its test prints nothing of the child's output (checked at the end). Options of the
    # caller's own are used as given, and their reports go wherever they say.
    if [[ -z ${TSAN_OPTIONS:-} ]]; then
      reports=$ROOT/$build/tsan-reports
      rm -rf "$reports" && mkdir -p "$reports"
      export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=7:suppressions=$ROOT/scripts/tsan.supp:log_path=$reports/report
    fi
    ;;
  *) echo "mode: expected address or thread, got $mode" >&2; exit 2 ;;
esac

# Fails the run when any process wrote a TSan report, and shows the first lines of each.
check_reports() {
  [[ -n ${reports:-} ]] || return 0
  local files=("$reports"/report*)
  [[ -e ${files[0]} ]] || { echo "no TSan report in $reports"; return 0; }
  for file in "${files[@]}"; do echo "== $file"; head -40 "$file"; done
  echo "${#files[@]} TSan report file(s) in $reports" >&2
  return 1
}

if [[ -n ${TARGETS:-} ]]; then
  # A subset: build these test executables only and run each whole.
  cmake --build "$build" -j "$JOBS" --target $TARGETS
  for target in $TARGETS; do
    exe=$(find "$build/tests" -type f -name "$target" -perm -u+x | head -1)
    echo "== $target"
    "$exe" --gtest_brief=1
  done
  check_reports
  exit 0
fi
cmake --build "$build" -j "$JOBS"
# Sanitized binaries are slower: generous per-test time, and the servers' children inherit the
# options above.
# deploy.* check the shipped binary's Debian packages, which a sanitizer build cannot match.
(cd "$build" && ctest -L 'unit|integration' -E '^deploy[.]' -j "$JOBS" --output-on-failure \
  --timeout 1800 ${CTEST_ARGS:-})
check_reports
