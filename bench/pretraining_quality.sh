#!/usr/bin/env bash
# Does pretraining help? Pretrains a small BERT from scratch on the text of the GLUE training sets,
# then fine-tunes it on SST-2 and CoLA and compares the dev scores with the same fine-tuning from
# random weights (same preset, same vocabulary). Everything goes through bertctl against a real
# bertd, as a user would run it (docs/benchmarks.md, "Pretraining from scratch").
#
#   bench/pretraining_quality.sh
#
# Environment: BUILD_DIR (default build), BERTD_SHARED_DIR (default ../shared next to the repo),
# PRESET (default tiny), PRETRAIN_STEPS (default 3000), PRETRAIN_BATCH (default 32),
# PRETRAIN_LR (default 1e-3), PRETRAIN_WARMUP (warmup ratio, default 0.05), VOCAB_SIZE (default
# 8000), SST2_TRAIN_ROWS (fine-tune on the first N rows of SST-2 train.tsv, "all" for every row;
# default 8000), SST2_EPOCHS (default 1), COLA_EPOCHS (default 2), FT_LR (fine-tuning learning
# rate, default 5e-4), THREADS (default nproc), SEEDS (fine-tuning seeds, default "42": one run
# of each comparison per seed), TASKS (default "sst2 cola"), NO_BUILD=1 (skip the build), KEEP=1
# keeps the temp data dir, REUSE=DIR fine-tunes against the pretrained model of a kept run instead
# of pretraining again.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/local_server.sh
source "$ROOT/scripts/lib/local_server.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
PRESET=${PRESET:-tiny}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-3000}
PRETRAIN_BATCH=${PRETRAIN_BATCH:-32}
PRETRAIN_LR=${PRETRAIN_LR:-1e-3}
PRETRAIN_WARMUP=${PRETRAIN_WARMUP:-0.05}
VOCAB_SIZE=${VOCAB_SIZE:-8000}
SST2_TRAIN_ROWS=${SST2_TRAIN_ROWS:-8000}
SST2_EPOCHS=${SST2_EPOCHS:-1}
COLA_EPOCHS=${COLA_EPOCHS:-2}
FT_LR=${FT_LR:-5e-4}
THREADS=${THREADS:-$(nproc)}
GLUE=$SHARED/data/glue
for f in "$GLUE/SST-2/train.tsv" "$GLUE/SST-2/dev.tsv" "$GLUE/CoLA/in_domain_train.tsv" \
         "$GLUE/CoLA/in_domain_dev.tsv" "$GLUE/MRPC/train.tsv" "$GLUE/RTE/train.tsv"; do
  [[ -f $f ]] || { echo "missing $f (set BERTD_SHARED_DIR)" >&2; exit 1; }
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
  [[ -f $BUILD_DIR/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja
  cmake --build "$BUILD_DIR" --target bertd bertctl
fi
BERTD=$BUILD_DIR/server/bertd
BERTCTL=$BUILD_DIR/client/bertctl
echo "build type: $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")"

SEEDS=${SEEDS:-42}
TASKS=${TASKS:-sst2 cola}
if [[ -n ${REUSE:-} ]]; then
  WORK=$REUSE
  KEEP=1
else
  WORK=$(mktemp -d /tmp/pretraining-quality.XXXXXX)
fi
mkdir -p "$WORK/data"
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
wait_until_healthy "$WORK/bertd.log" "${CTL[@]}" health

RESULTS=()
seconds_since() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.0f'; }

if [[ -z ${REUSE:-} ]]; then
  # The pretraining corpus: every text column of the four GLUE training sets, one text per line
  # (each line is a document; dev sets are not used). Tabs and the MRPC byte order mark removed.
  CORPUS=$WORK/glue-train-text.txt
  {
    tail -n +2 "$GLUE/SST-2/train.tsv" | cut -f1
    cut -f4 "$GLUE/CoLA/in_domain_train.tsv"
    tail -n +2 "$GLUE/MRPC/train.tsv" | cut -f4,5 | tr '\t' '\n'
    tail -n +2 "$GLUE/RTE/train.tsv" | cut -f2,3 | tr '\t' '\n'
  } | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -v '^$' >"$CORPUS"
  echo "corpus: $(wc -l <"$CORPUS") lines, $(wc -w <"$CORPUS") words, $(du -h "$CORPUS" | cut -f1)"

  # The vocabulary on its own (the pretraining job learns the same one from the same text).
  "${CTL[@]}" vocab train "$CORPUS" --vocab-size "$VOCAB_SIZE" --out "$WORK/vocab.txt"

  start=$(date +%s.%N)
  "${CTL[@]}" submit-job --task pretraining --train "$CORPUS" --base-model "scratch:$PRESET" \
    --output "glue-$PRESET" --eval-split 0.02 \
    --set "vocabulary.vocab_size=$VOCAB_SIZE" --set max_steps="$PRETRAIN_STEPS" \
    --set per_device_train_batch_size="$PRETRAIN_BATCH" --set per_device_eval_batch_size=64 \
    --set max_seq_length=64 --set learning_rate="$PRETRAIN_LR" --set warmup_ratio="$PRETRAIN_WARMUP" \
    --set eval_strategy=steps --set eval_steps=2000 --set save_steps=2000 \
    --follow -o json >"$WORK/pretrain.json"
  RESULTS+=("$(jq -r --arg wall "$(seconds_since "$start")" \
    '"pretrain glue-'"$PRESET"'\tsteps=\(.progress.totalSteps)\tmlm_accuracy=\(.evalMetrics.mlm_accuracy*10000|round/10000)\tperplexity=\(.evalMetrics.perplexity*100|round/100)\tnsp_accuracy=\(.evalMetrics.nsp_accuracy*10000|round/10000)\twall_s=\($wall)\tmodel=\(.resultModel)"' \
    "$WORK/pretrain.json")")
  echo "${RESULTS[-1]}"
fi

if [[ $SST2_TRAIN_ROWS == all ]]; then
  cp "$GLUE/SST-2/train.tsv" "$WORK/sst2-train.tsv"
else
  head -n "$((SST2_TRAIN_ROWS + 1))" "$GLUE/SST-2/train.tsv" >"$WORK/sst2-train.tsv"  # + header
fi

# finetune NAME BASE [--vocab ...] bertctl-args...: fine-tunes, records dev metrics and time.
finetune() {
  local name=$1 base=$2; shift 2
  local start
  start=$(date +%s.%N)
  "${CTL[@]}" submit-job --task sequence_classification --base-model "$base" --output "$name" \
    --set per_device_train_batch_size=32 --set per_device_eval_batch_size=64 \
    --set max_seq_length=64 --set learning_rate="$FT_LR" --set warmup_ratio=0.1 \
    --follow -o json "$@" >"$WORK/$name.json"
  RESULTS+=("$(jq -r --arg wall "$(seconds_since "$start")" --arg name "$name" \
    '"\($name)\taccuracy=\(.evalMetrics.accuracy*10000|round/10000)\tmcc=\(.evalMetrics.matthews_correlation*10000|round/10000)\tf1=\(.evalMetrics.f1*10000|round/10000)\tsteps=\(.progress.totalSteps)\twall_s=\($wall)"' \
    "$WORK/$name.json")")
  echo "${RESULTS[-1]}"
}

SST2=(--train "$WORK/sst2-train.tsv" --eval "$GLUE/SST-2/dev.tsv" --set num_train_epochs="$SST2_EPOCHS")
COLA=(--train "$GLUE/CoLA/in_domain_train.tsv" --eval "$GLUE/CoLA/in_domain_dev.tsv"
      --no-header --text 3 --label 1 --set num_train_epochs="$COLA_EPOCHS")
for seed in $SEEDS; do
  for task in $TASKS; do
    case $task in
      sst2) args=("${SST2[@]}") ;;
      cola) args=("${COLA[@]}") ;;
      *) echo "TASKS: unknown task $task (sst2, cola)" >&2; exit 2 ;;
    esac
    finetune "$task-pretrained-s$seed" "glue-$PRESET" "${args[@]}" --set seed="$seed"
    finetune "$task-scratch-s$seed" "scratch:$PRESET" --vocab "model:glue-$PRESET" "${args[@]}" \
      --set seed="$seed"
  done
done

echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(date -u +%F)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${RESULTS[@]}"
