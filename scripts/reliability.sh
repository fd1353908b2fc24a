#!/usr/bin/env bash
# The load and fault tests of issue #8 in one command; rewrites the "Load and faults" section of
# docs/reliability.md (between the reliability:begin / reliability:end markers) and its plot.
#
#   scripts/reliability.sh                         # 3 minutes of load, then the fault tests
#   LOAD_SECONDS=60 CONCURRENCY=32 scripts/reliability.sh
#
# Load: CONCURRENCY clients (loopback) call Classify (and Tokenize, one call in TOKENIZE_EVERY) on
# the tiny classifier fixture for LOAD_SECONDS while a fine-tuning job trains on the same server.
# The server's queue is capped (--max_queue_size=MAX_QUEUE_SIZE) below what the clients can keep
# waiting, so it is overloaded on purpose: RESOURCE_EXHAUSTED is the only acceptable error.
# bertd's resident memory is sampled every second. Faults: the fault_test suite.
# Environment: BUILD_DIR (default build), BERTD_SHARED_DIR (default ../shared), NO_DOCS=1 (print,
# do not rewrite the docs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/local_server.sh
source "$ROOT/scripts/lib/local_server.sh"
BUILD=${BUILD_DIR:-$ROOT/build}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
LOAD_SECONDS=${LOAD_SECONDS:-180}
CONCURRENCY=${CONCURRENCY:-64}
MAX_QUEUE_SIZE=${MAX_QUEUE_SIZE:-48}
TOKENIZE_EVERY=${TOKENIZE_EVERY:-4}
log() { echo "reliability: $*" >&2; }

"$ROOT/scripts/install-deps.sh"
for pkg in libbenchmark-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    { SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo; $SUDO apt-get install -y -qq --no-install-recommends "$pkg"; }
done
for f in fixtures/tiny-bert/classifier/model.safetensors data/glue/SST-2/dev.tsv data/glue/SST-2/train.tsv; do
  [[ -f $SHARED/$f ]] || { echo "reliability: missing $SHARED/$f (set BERTD_SHARED_DIR)" >&2; exit 1; }
done
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DBERTD_BUILD_BENCH=ON >&2
cmake --build "$BUILD" -j "$(nproc)" --target bertd bertctl bench_load fault_test >&2

WORK=$(mktemp -d /tmp/bertd-reliability.XXXXXX)
trap 'kill ${SAMPLER:-} ${BERTD_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
STARTED=$(date -u '+%F %H:%M')

# --- load --------------------------------------------------------------------------------------
mkdir -p "$WORK/data/models/classifier/1"
cp "$SHARED"/fixtures/tiny-bert/classifier/{config.json,vocab.txt,model.safetensors} "$WORK/data/models/classifier/1/"
PORT=$(free_port)
"$BUILD/server/bertd" --data_dir="$WORK/data" --listen="127.0.0.1:$PORT" --metrics_listen= \
  --max_queue_size="$MAX_QUEUE_SIZE" --intra_op_threads=1 --training_threads=1 --cpu_workers=1 \
  >"$WORK/bertd.log" 2>&1 &
BERTD_PID=$!
CTL=("$BUILD/client/bertctl" --server "127.0.0.1:$PORT")
wait_until_healthy "$WORK/bertd.log" "${CTL[@]}" health

# A training job that runs through the whole load phase.
head -n 2001 "$SHARED/data/glue/SST-2/train.tsv" >"$WORK/train.tsv"
JOB=$("${CTL[@]}" submit-job --task sequence_classification --train "$WORK/train.tsv" \
  --base-model classifier --output under-load --set max_steps=1000000 --set max_seq_length=64 \
  --set save_steps=200 -o json | jq -r .id)
log "training job $JOB; load: $CONCURRENCY clients for ${LOAD_SECONDS}s, queue capped at $MAX_QUEUE_SIZE"

tail -n +2 "$SHARED/data/glue/SST-2/dev.tsv" | cut -f1 >"$WORK/texts.txt"
START_MS=$(date +%s%3N)
( while kill -0 "$BERTD_PID" 2>/dev/null; do
    echo "$(( $(date +%s%3N) - START_MS )) $(awk '/VmRSS/ {print $2}' /proc/$BERTD_PID/status)"
    sleep 1
  done ) >"$WORK/rss.tsv" &
SAMPLER=$!
"$BUILD/bench/bench_load" --server="127.0.0.1:$PORT" --model=classifier --texts="$WORK/texts.txt" \
  --concurrency="$CONCURRENCY" --duration="$LOAD_SECONDS" --tokenize_every="$TOKENIZE_EVERY" \
  --timeline="$WORK/timeline.jsonl" >"$WORK/load.json"
"${CTL[@]}" jobs get "$JOB" -o json >"$WORK/job.json"
"${CTL[@]}" jobs cancel "$JOB" >/dev/null
kill "$SAMPLER"; SAMPLER=
kill -TERM "$BERTD_PID"
SHUTDOWN=0; wait "$BERTD_PID" || SHUTDOWN=$?
BERTD_PID=
log "load done: $(cat "$WORK/load.json")"

# --- faults ------------------------------------------------------------------------------------
log "fault tests"
FAULTS=0
# A fault test that cannot find shared/ must fail, not skip: a skip proves nothing.
export BERTD_REQUIRE_SHARED_DATA=1
BERTD_SHARED_DIR=$SHARED "$BUILD/tests/integration/fault_test" --gtest_output="json:$WORK/faults.json" \
  >"$WORK/faults.log" 2>&1 || FAULTS=$?
tail -n 3 "$WORK/faults.log" >&2

/usr/bin/python3 "$ROOT/scripts/reliability_report.py" --work "$WORK" --started "$STARTED" \
  --concurrency "$CONCURRENCY" --seconds "$LOAD_SECONDS" --queue "$MAX_QUEUE_SIZE" \
  --tokenize-every "$TOKENIZE_EVERY" --shutdown-code "$SHUTDOWN" \
  ${NO_DOCS:+--no-docs} --docs "$ROOT/docs/reliability.md" --plot "$ROOT/docs/images/reliability-load.png"
[[ $FAULTS == 0 && $SHUTDOWN == 0 ]]
