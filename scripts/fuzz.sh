#!/usr/bin/env bash
# Builds bertd's libFuzzer targets (clang, ASan + UBSan) in their own build directory and runs each
# for a fixed time: first over its regression inputs (fuzz/regressions/<target>/, earlier
# findings), then fuzzing from its seed corpus (fuzz/corpus/<target>/). Exits 1 on any finding;
# the crashing input is left in <build>/fuzz-artifacts/<target>/ to be fixed and then kept as a
# regression input.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 30 s, every target)
#   BERTD_FUZZ_BUILD_DIR (default build-fuzz), JOBS (default 2), FUZZ_MAX_LEN (default 1 MiB: the
#   hostile inputs worth finding, such as 400 KB of nested brackets, are large), FUZZ_LEN_CONTROL
#   (libFuzzer's -len_control, default 100: inputs grow slowly from small ones; 0 lets mutations
#   reach FUZZ_MAX_LEN at once, what the long runs in docs/security.md use)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
build=${BERTD_FUZZ_BUILD_DIR:-build-fuzz}
all=(tokenizer tokenizer_json dataset_tsv dataset_csv dataset_jsonl dataset_squad_json dataset_text
     safetensors torch_checkpoint config)
targets=("${@:-${all[@]}}")

cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTD_BUILD_FUZZERS=ON -DBERTD_SANITIZE=address,undefined \
  -DBERTD_BUILD_TESTS=OFF -DBERTD_USE_PCH=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target "${targets[@]/%/_fuzzer}"

# LibTorch allocates process-lifetime caches on first use; they are not leaks of the loaders.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for target in "${targets[@]}"; do
  binary="$build/fuzz/${target}_fuzzer"
  seeds="fuzz/corpus/$target"
  work="$build/fuzz-corpus/$target"
  artifacts="$build/fuzz-artifacts/$target"
  mkdir -p "$work" "$artifacts"
  dict=()
  case "$target" in
    config | dataset_jsonl | dataset_squad_json | safetensors | tokenizer_json) dict=(-dict=fuzz/dicts/json.dict) ;;
  esac
  echo "== $target: regression inputs"
  if compgen -G "fuzz/regressions/$target/*" >/dev/null; then
    if ! "$binary" -runs=0 "fuzz/regressions/$target"/* 2>"$artifacts/regressions.log"; then
      tail -40 "$artifacts/regressions.log"
      failed+=("$target (regression)")
      continue
    fi
  fi
  echo "== $target: fuzzing for ${seconds}s"
  # New inputs go to $work (first directory); the seeds in the repository are only read.
  if ! "$binary" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
       -max_len="${FUZZ_MAX_LEN:-1048576}" -len_control="${FUZZ_LEN_CONTROL:-100}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
       "$work" "$seeds" 2>"$artifacts/fuzz.log"; then
    tail -60 "$artifacts/fuzz.log"
    failed+=("$target")
    continue
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$artifacts/fuzz.log" |
    tr '\n' ' '
  largest=$(find "$work" -type f -printf '%s\n' | sort -n | tail -1)
  echo "largest corpus input: ${largest:-0} bytes"
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: findings in: ${failed[*]} (inputs under $build/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no findings"
