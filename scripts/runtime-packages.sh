#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries the given binaries link directly
# (their DT_NEEDED entries), one per line, sorted. apt installs what those need in turn, so this
# is the whole runtime: docker/Dockerfile installs exactly this list in the runtime stage, and
# tests/deploy checks it on the freshly built bertd.
set -euo pipefail
if (($# == 0)); then
  echo "usage: $0 BINARY..." >&2
  exit 2
fi
paths=()
for bin in "$@"; do
  resolved=$(ldd "$bin")
  if grep -q "not found" <<<"$resolved"; then
    echo "runtime-packages: $bin: $(grep "not found" <<<"$resolved" | head -1)" >&2
    exit 1
  fi
  # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)" for each direct dependency.
  while read -r needed; do
    path=$(awk -v lib="$needed" '$1 == lib && $2 == "=>" { print $3 }' <<<"$resolved")
    if [[ -z $path ]]; then
      echo "runtime-packages: $bin: ldd does not resolve $needed" >&2
      exit 1
    fi
    paths+=("$(readlink -f "$path")")
  done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
# One dpkg query for all paths; /usr-merge means a library may be registered under /lib or /usr/lib.
query=()
for path in $(printf '%s\n' "${paths[@]}" | sort -u); do
  query+=("$path" "${path#/usr}")
done
owners=$(dpkg -S "${query[@]}" 2>/dev/null | cut -d: -f1 | tr ', ' '\n\n' | sed '/^$/d' | sort -u || true)
# Every library must have an owner.
for path in $(printf '%s\n' "${paths[@]}" | sort -u); do
  if ! dpkg -S "$path" >/dev/null 2>&1 && ! dpkg -S "${path#/usr}" >/dev/null 2>&1; then
    echo "runtime-packages: no Debian package owns $path" >&2
    exit 1
  fi
done
printf '%s\n' "$owners"
