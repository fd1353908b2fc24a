#!/usr/bin/env bash
# Data-parallel throughput on this machine: the same fine-tuning job with world_size 1, 2, ...
# (docs/distributed.md). Each job runs on a fresh bertd with one CPU slot per rank (--training_devices)
# sharing $(nproc) threads (--training_threads per slot): one
# process gets every thread, N workers get nproc/N each. Reports samples/s (from the job's last
# progress event), all-reduce seconds per step and the wall time of submit-job --follow.
#
#   bench/distributed_throughput.sh
#
# Environment: BUILD_DIR (default build), BERTD_SHARED_DIR, PRESET (scratch preset, default mini),
# WORLD_SIZES (default "1 2"), STEPS (default 60), BATCH (global batch per step, default 32),
# SEQ (max_seq_length, default 128), ROUNDS (default 2; alternating, best round reported),
# NO_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/local_server.sh
source "$ROOT/scripts/lib/local_server.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
PRESET=${PRESET:-mini}
WORLD_SIZES=${WORLD_SIZES:-1 2}
STEPS=${STEPS:-60}
BATCH=${BATCH:-32}
SEQ=${SEQ:-128}
ROUNDS=${ROUNDS:-2}
TRAIN=$SHARED/data/glue/SST-2/train.tsv
[[ -f $TRAIN ]] || { echo "missing $TRAIN (set BERTD_SHARED_DIR)" >&2; exit 1; }
if [[ ${NO_BUILD:-0} != 1 ]]; then
  [[ -f $BUILD_DIR/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja
  cmake --build "$BUILD_DIR" --target bertd bertctl
fi
BERTD=$BUILD_DIR/server/bertd
BERTCTL=$BUILD_DIR/client/bertctl
WORK=$(mktemp -d /tmp/distributed-throughput.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -n 4001 "$TRAIN" >"$WORK/train.tsv"

run_one() {  # run_one WORLD_SIZE ROUND -> one TSV line
  local world=$1 round=$2 port
  port=$(free_port)
  rm -rf "$WORK/data"
  "$BERTD" --data_dir="$WORK/data" --listen="127.0.0.1:$port" --metrics_listen= \
    --training_devices="cpu:$world" --training_threads="$(( ${TRAINING_THREADS:-$(nproc)} / world > 0 ? ${TRAINING_THREADS:-$(nproc)} / world : 1 ))" \
    --intra_op_threads=1 >"$WORK/bertd.log" 2>&1 &
  local pid=$!
  wait_until_healthy "$WORK/bertd.log" "$BERTCTL" --server "127.0.0.1:$port" health
  local start end
  start=$(date +%s.%N)
  "$BERTCTL" --server "127.0.0.1:$port" submit-job --task sequence_classification \
    --base-model "scratch:$PRESET" --output tp --train "$WORK/train.tsv" \
    --set max_steps="$STEPS" --set per_device_train_batch_size=$((BATCH / world)) \
    --set max_seq_length="$SEQ" --set learning_rate=1e-4 --set save_steps=100000 \
    --set distributed.world_size="$world" --follow -o json >"$WORK/job.json"
  end=$(date +%s.%N)
  kill "$pid"; wait "$pid" || true
  jq -r --arg world "$world" --arg round "$round" --arg wall "$(echo "$end - $start" | bc)" \
    '"\($world)\t\($round)\t\(.progress.samplesPerSecond)\t\(.progress.allreduceSecondsPerStep // 0)\t\($wall)"' \
    "$WORK/job.json"
}

echo -e "world_size\tround\tsamples_per_s\tallreduce_s_per_step\twall_s"
for round in $(seq "$ROUNDS"); do
  for world in $WORLD_SIZES; do run_one "$world" "$round"; done
done
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(date -u '+%F %H:%M') UTC; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "job: scratch:$PRESET, $STEPS steps of $BATCH samples x $SEQ tokens (SST-2 train rows), bf16 off"
