#!/usr/bin/env bash
# Runs every performance comparison of issue #9 side by side, in one session, and rewrites the
# performance sections of docs/benchmarks.md (between the "perf:begin" / "perf:end" markers).
#
#   bench/run_all.sh                 # ~25 min on a 2-core machine
#   BENCH_SECONDS=3 ROUNDS=1 bench/run_all.sh   # quick pass (~10 min), noisier
#
# References, installed here if missing: PyTorch eager (Debian python3-torch, /usr/bin/python3),
# ONNX Runtime (PyPI onnxruntime, Python bindings) on the same model exported by
# torch.onnx.export, Hugging Face tokenizers (PyPI tokenizers, Python bindings of the Rust library).
# The two PyPI packages, pinned below, live in a virtual environment outside the clone,
# $BERTD_BENCH_VENV (default ~/.cache/bertd/bench-venv). Every measurement alternates between
# the implementations (ROUNDS times) so that load from other processes hits all of them alike; the
# tables report ratios of the best round of each. Benchmarks never run from `make test`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
WORK=${WORK_DIR:-$BUILD/bench-work}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${BENCH_THREADS:-$(nproc)}
SERVE_SECONDS=${SERVE_SECONDS:-30}
# A bert-base training step takes seconds: at least a few of them per measurement.
TRAIN_SECS=${TRAIN_SECONDS:-$((SECS > 15 ? SECS : 15))}
CONCURRENCY=${CONCURRENCY:-64}
PY=/usr/bin/python3
# Pinned references: onnxruntime 1.30 as the Node.js bindings (onnxruntime-node@1.30) before,
# tokenizers 0.23.2 as in the published tokenizer table.
ORT_PIN='onnxruntime==1.30.*'
TOKENIZERS_PIN='tokenizers==0.23.2'
VENV=${BERTD_BENCH_VENV:-$HOME/.cache/bertd/bench-venv}
VPY=$VENV/bin/python
RESULTS=$WORK/results.jsonl
STARTED=$(date +%s)

log() { echo "run_all: $*" >&2; }

# --- dependencies ---------------------------------------------------------------------------
"$ROOT/scripts/install-deps.sh"
missing=()
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}
for pkg in libbenchmark-dev python3-matplotlib; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
# The venv is made from Debian's python3; without python3-venv (which gives it ensurepip) that fails
# half-way, and is made again in the same directory once the package is installed.
if [[ ! -x $VPY ]] || ! "$VPY" -m pip --version >/dev/null 2>&1; then
  mkdir -p "$(dirname "$VENV")"
  if ! $PY -m venv "$VENV" >&2; then
    apt_install python3-venv
    $PY -m venv "$VENV" >&2
  fi
fi
# A no-op (and offline) once the pinned versions are there.
"$VPY" -m pip install -q --disable-pip-version-check "$ORT_PIN" "$TOKENIZERS_PIN" >&2

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTD_BUILD_BENCH=ON >&2
cmake --build "$BUILD" -j "$(nproc)" --target bench_model bench_tokenizer bench_load bertd >&2

# --- inputs -----------------------------------------------------------------------------------
VOCAB_DIR=$SHARED/fixtures/tiny-bert/classifier  # bert-base-uncased's vocabulary
for f in "$VOCAB_DIR/vocab.txt" "$SHARED/data/glue/SST-2/train.tsv" "$SHARED/data/glue/SST-2/dev.tsv"; do
  [[ -f $f ]] || { echo "run_all: missing $f (set BERTD_SHARED_DIR)" >&2; exit 1; }
done
tail -n +2 "$SHARED/data/glue/SST-2/train.tsv" | cut -f1 > "$WORK/sst2_train.txt"
tail -n +2 "$SHARED/data/glue/SST-2/dev.tsv" | cut -f1 > "$WORK/sst2_dev.txt"
: > "$RESULTS"
record() {  # record KIND JSON
  $PY -c 'import json,sys; d=json.loads(sys.argv[2]); d["kind"]=sys.argv[1]; print(json.dumps(d))' \
    "$1" "$2" >> "$RESULTS"
}
# Google Benchmark JSON -> one line per benchmark (name + counters).
gbench() {  # gbench KIND FILTER COMMAND...
  local kind=$1 filter=$2
  shift 2
  # One warm-up pass first, as every reference does (a bert-base training step is ~5 s, so without
  # it the first, allocating step is the whole measurement).
  "$@" --benchmark_filter="$filter" --benchmark_min_time="${MIN_TIME:-$SECS}" --benchmark_min_warmup_time=0.5 \
    --benchmark_format=json \
    2>/dev/null | $PY -c '
import json, sys
for b in json.load(sys.stdin)["benchmarks"]:
    b["kind"] = sys.argv[1]
    print(json.dumps(b))' "$kind" >> "$RESULTS"
}

# --- tokenizer: one core, same text, identical output -----------------------------------------
log "tokenizer"
export BERTD_BENCH_VOCAB_DIR=$VOCAB_DIR BERTD_BENCH_TEXTS=$WORK/sst2_train.txt
"$BUILD/bench/bench_tokenizer" --dump_ids="$WORK/bertd_ids.txt"
for round in $(seq "$ROUNDS"); do
  record tokenizer "$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false taskset -c 0 \
    "$VPY" "$ROOT/bench/reference_tokenizer.py" "$VOCAB_DIR/vocab.txt" "$WORK/sst2_train.txt" "$SECS" \
    "$WORK/hf_ids.txt")"
  gbench tokenizer '^BM_Encode' taskset -c 0 "$BUILD/bench/bench_tokenizer"
done
if cmp -s "$WORK/bertd_ids.txt" "$WORK/hf_ids.txt"; then IDS_SAME=true; else IDS_SAME=false; fi
record tokenizer_identity "{\"identical\": $IDS_SAME, \"texts\": $(wc -l < "$WORK/sst2_train.txt")}"

# --- model forward, bert-base, seq 128 -------------------------------------------------------
log "forward"
BERTD_BENCH_TEXTS=$WORK/sst2_dev.txt "$BUILD/bench/bench_tokenizer" --dump_ids="$WORK/dev_ids.txt"
ONNX=$WORK/bert-base.onnx
[[ -f $ONNX ]] || $PY "$ROOT/bench/reference_torch.py" --mode export --out "$ONNX" >/dev/null 2>&1
export BERTD_BENCH_THREADS=$THREADS BERTD_BENCH_IDS=$WORK/dev_ids.txt
for round in $(seq "$ROUNDS"); do
  for batch in 1 32; do
    record forward "$($PY "$ROOT/bench/reference_torch.py" --mode forward --batch $batch \
      --threads "$THREADS" --seconds "$SECS" 2>/dev/null)"
    record forward "$("$VPY" "$ROOT/bench/reference_ort.py" "$ONNX" $batch 128 "$THREADS" "$SECS")"
    for impl in 0 1 2; do
      gbench forward "^BM_Forward/impl:$impl/shape:1/batch:$batch/seq:128/" "$BUILD/bench/bench_model"
    done
  done
  gbench gemm "^BM_GemmCeiling" "$BUILD/bench/bench_model"
  # Real text lengths (SST-2 dev), batches of 32: padding cost and the raw rate served is held to.
  for impl in 0 1 2; do
    gbench textmix "^BM_TextMix/impl:$impl/shape:1/" "$BUILD/bench/bench_model"
  done
done

# --- training step ------------------------------------------------------------------------------
log "training step"
for round in $(seq "$ROUNDS"); do
  record train "$($PY "$ROOT/bench/reference_torch.py" --mode train --batch 8 --seq 128 \
    --threads "$THREADS" --seconds "$TRAIN_SECS" 2>/dev/null)"
  MIN_TIME=$TRAIN_SECS gbench train "^BM_TrainStep/shape:1/" "$BUILD/bench/bench_model"
done

# --- served: gRPC + dynamic batcher, SST-2 dev texts, startup and memory ------------------------
log "served"
REPO=$WORK/repo
if [[ ! -f $REPO/base/1/model.safetensors ]]; then
  mkdir -p "$REPO/base"
  "$BUILD/bench/bench_model" --save_model "$REPO/base/1" "$VOCAB_DIR"
fi
MODEL_BYTES=$(stat -c %s "$REPO/base/1/model.safetensors")
PORT=${BENCH_PORT:-50751}
for precision in fp32 bf16; do
  rm -rf "$WORK/data"
  start_ms=$(date +%s%3N)
  "$BUILD/server/bertd" --listen=127.0.0.1:$PORT --metrics_listen=127.0.0.1:$((PORT + 1)) \
    --data_dir="$WORK/data" --model_repository="$REPO" --precision=$precision \
    --intra_op_threads="$THREADS" > "$WORK/bertd_$precision.log" 2>&1 &
  pid=$!
  ready=$("$BUILD/bench/bench_load" --server=127.0.0.1:$PORT --model=base \
    --texts="$WORK/sst2_dev.txt" --concurrency=1 --duration=0 --wait_ready=600 \
    --since_epoch_ms="$start_ms")
  rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  record startup "$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"precision": sys.argv[2], "ready_after_s": d["ready_after_s"], "rss_kb": int(sys.argv[3]), "model_file_bytes": int(sys.argv[4])}))' "$ready" $precision "$rss_kb" "$MODEL_BYTES")"
  served=$("$BUILD/bench/bench_load" --server=127.0.0.1:$PORT --model=base \
    --texts="$WORK/sst2_dev.txt" --concurrency="$CONCURRENCY" --duration="$SERVE_SECONDS")
  record served "$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); d["precision"]=sys.argv[2]; print(json.dumps(d))' "$served" $precision)"
  hwm_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  curl -s "http://127.0.0.1:$((PORT + 1))/metrics" > "$WORK/metrics_$precision.txt" 2>/dev/null || true
  kill "$pid"; wait "$pid" || true
  record memory "{\"precision\": \"$precision\", \"rss_after_load_kb\": $rss_kb, \"peak_kb\": $hwm_kb}"
done

ELAPSED=$(( $(date +%s) - STARTED ))
$PY "$ROOT/bench/report.py" --results "$RESULTS" --docs "$ROOT/docs/benchmarks.md" \
  --plot "$ROOT/docs/benchmarks-forward.png" --elapsed "$ELAPSED" --seconds "$SECS" \
  --rounds "$ROUNDS" --threads "$THREADS"
log "done in ${ELAPSED}s; results in $RESULTS, docs/benchmarks.md updated"
