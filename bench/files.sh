#!/usr/bin/env bash
# Benchmark of file component extraction: Rewind's streaming restore of a >= 1 GB component
# (read from inside the backup tar, decompressed on its own thread, extracted safely into
# staging and renamed in) against GNU `tar -xzf` of the same component file, in the same run.
#
#   bench/files.sh [SIZE_MB] [gzip|zstd]
#
# Builds the example first: `cargo build --release -p rewind-engine --example restore_files`.
# Reports both times and the ratio Rewind / GNU tar (goal <= 1.0).
set -euo pipefail
size_mb=${1:-1100}
comp=${2:-gzip}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${REWIND_FILES_BIN:-$here/target/release/examples/restore_files}
[ -x "$bin" ] || { echo "build first: cargo build --release -p rewind-engine --example restore_files" >&2; exit 1; }
out=$(mktemp -d /tmp/rewind-bench-files.XXXXXX)
trap 'rm -rf "$out"' EXIT

# A component like real uploads: many small files, some large ones; half incompressible
# (images, archives), half text.
src=$out/src
mkdir -p "$src/@hashed"
half_kb=$(( size_mb * 1024 / 40 ))
for d in $(seq 1 20); do
  dir=$src/@hashed/$(printf '%02x/%02x' "$d" "$((d * 7 % 256))")
  mkdir -p "$dir"
  # one large binary file per directory
  head -c "${half_kb}K" /dev/urandom > "$dir/large.bin"
  # many small text files (64 KiB each)
  head -c "$(( half_kb * 3 / 4 ))K" /dev/urandom | base64 -w 0 | split -b 64k -a 4 - "$dir/f_"
done
bytes=$(find "$src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$src" -type f | wc -l)

case $comp in
  gzip) compress=(gzip -c -1) ;;
  zstd) compress=(zstd -q -c -1) ;;
  *) echo "gzip or zstd" >&2; exit 2 ;;
esac
mkdir -p "$out/backup"
tar -C "$src" -cf - . | "${compress[@]}" > "$out/backup/uploads.tar.gz"
printf ':gitlab_version: 16.10.3-ee\n:skipped: \n' > "$out/backup/backup_information.yml"
archive=$out/1713867342_2024_04_23_16.10.3-ee_gitlab_backup.tar
tar -C "$out/backup" -cf "$archive" backup_information.yml uploads.tar.gz
comp_bytes=$(stat -c %s "$out/backup/uploads.tar.gz")
rm -rf "$src"
sync

now() { date +%s.%N; }
run_gnu() {
  rm -rf "$out/gnu"; mkdir -p "$out/gnu"; sync
  local t0; t0=$(now)
  if [ "$comp" = gzip ]; then tar -C "$out/gnu" -xzf "$out/backup/uploads.tar.gz"
  else tar -C "$out/gnu" --zstd -xf "$out/backup/uploads.tar.gz"; fi
  sync
  echo "$(now) - $t0" | bc
}
run_rewind() {
  rm -rf "$out/root"; mkdir -p "$out/root"; sync
  local t0; t0=$(now)
  "$bin" "$archive" "$out/root" uploads > "$out/report.json"
  sync
  echo "$(now) - $t0" | bc
}

echo "component: $files files, $bytes bytes, $comp_bytes bytes $comp-compressed"
gnu_times=(); rw_times=()
for round in 1 2; do
  g=$(run_gnu); r=$(run_rewind)
  echo "round $round: GNU tar ${g}s, Rewind ${r}s"
  gnu_times+=("$g"); rw_times+=("$r")
done
best_gnu=$(printf '%s\n' "${gnu_times[@]}" | sort -g | head -1)
best_rw=$(printf '%s\n' "${rw_times[@]}" | sort -g | head -1)
# Both trees must be equal.
diff -r "$out/gnu" "$out/root/var/opt/gitlab/gitlab-rails/uploads" > /dev/null && echo "trees equal"
cat "$out/report.json"
echo "best: GNU tar ${best_gnu}s, Rewind ${best_rw}s, ratio $(echo "scale=3; $best_rw / $best_gnu" | bc)"
