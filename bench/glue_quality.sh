#!/usr/bin/env bash
# Fine-tunes a base model on GLUE SST-2 and CoLA through bertctl against a real bertd and prints
# dev accuracy / MCC and wall times (docs/benchmarks.md, "Fine-tuning quality").
#
#   bench/glue_quality.sh                      # base: the tiny random fixture (no weights to download)
#   BASE_MODEL_DIR=path/to/bert-base-uncased bench/glue_quality.sh
#
# Environment: BUILD_DIR (default build), BERTD_SHARED_DIR (default ../shared next to the repo),
# SST2_TRAIN_ROWS (train on the first N rows of SST-2 train.tsv; default all 67,349),
# THREADS (LibTorch threads for training; default nproc), NO_BUILD=1 (skip the build),
# KEEP=1 keeps the temp data dir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/local_server.sh
source "$ROOT/scripts/lib/local_server.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
BASE_MODEL_DIR=${BASE_MODEL_DIR:-$SHARED/fixtures/tiny-bert/classifier}
THREADS=${THREADS:-$(nproc)}
GLUE=$SHARED/data/glue
for f in "$GLUE/SST-2/train.tsv" "$GLUE/SST-2/dev.tsv" "$GLUE/CoLA/in_domain_train.tsv" \
         "$GLUE/CoLA/in_domain_dev.tsv" "$BASE_MODEL_DIR/config.json"; do
  [[ -f $f ]] || { echo "missing $f (set BERTD_SHARED_DIR or BASE_MODEL_DIR)" >&2; exit 1; }
done

# Incremental: a no-op when bertd and bertctl are up to date. NO_BUILD=1 uses BUILD_DIR as it is.
if [[ ${NO_BUILD:-0} != 1 ]]; then
  [[ -f $BUILD_DIR/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja
  cmake --build "$BUILD_DIR" --target bertd bertctl
fi
BERTD=$BUILD_DIR/server/bertd
BERTCTL=$BUILD_DIR/client/bertctl
echo "build type: $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")"

WORK=$(mktemp -d /tmp/glue-quality.XXXXXX)
mkdir -p "$WORK/data/models/tiny/1"
for f in config.json vocab.txt model.safetensors; do cp "$BASE_MODEL_DIR/$f" "$WORK/data/models/tiny/1/"; done
PORT=$(free_port)
"$BERTD" --data_dir="$WORK/data" --listen="127.0.0.1:$PORT" --metrics_listen=127.0.0.1:0 \
  --intra_op_threads="$THREADS" --training_threads="$THREADS" >"$WORK/bertd.log" 2>&1 &
BERTD_PID=$!
cleanup() {
  kill "$BERTD_PID" 2>/dev/null && wait "$BERTD_PID" 2>/dev/null || true
  [[ ${KEEP:-0} == 1 ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
CTL=("$BERTCTL" --server "127.0.0.1:$PORT")
wait_until_healthy "$WORK/bertd.log" "${CTL[@]}" health --model tiny

SST2_TRAIN=$GLUE/SST-2/train.tsv
if [[ -n ${SST2_TRAIN_ROWS:-} ]]; then
  head -n "$((SST2_TRAIN_ROWS + 1))" "$GLUE/SST-2/train.tsv" >"$WORK/sst2-train.tsv"  # + header
  SST2_TRAIN=$WORK/sst2-train.tsv
fi

# run NAME bertctl-submit-args...: fine-tunes, prints progress to stderr, records metrics and time.
RESULTS=()
run() {
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "${CTL[@]}" submit-job --task sequence_classification --base-model tiny --output "$name" \
    --follow -o json "$@" >"$WORK/$name.json"
  end=$(date +%s.%N)
  RESULTS+=("$(jq -r --arg wall "$(echo "$end - $start" | bc)" --arg name "$name" \
    '"\($name)\taccuracy=\(.evalMetrics.accuracy*10000|round/10000)\tmcc=\(.evalMetrics.matthews_correlation*10000|round/10000)\tf1=\(.evalMetrics.f1*10000|round/10000)\twall_s=\($wall|tonumber|round)\tsteps=\(.progress.totalSteps)\tmodel=\(.resultModel)"' \
    "$WORK/$name.json")")
  echo "${RESULTS[-1]}"
}

COMMON=(--set per_device_train_batch_size=32 --set per_device_eval_batch_size=64
        --set max_seq_length=64 --set learning_rate=1e-3)
run sst2 --train "$SST2_TRAIN" --eval "$GLUE/SST-2/dev.tsv" --set num_train_epochs=1 "${COMMON[@]}"
run cola --train "$GLUE/CoLA/in_domain_train.tsv" --eval "$GLUE/CoLA/in_domain_dev.tsv" \
  --no-header --text 3 --label 1 --set num_train_epochs=3 "${COMMON[@]}"

echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(date -u +%F)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${RESULTS[@]}"
