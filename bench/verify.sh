#!/usr/bin/env bash
# Benchmark: `rewind inspect --verify` against `tar -xOf X.tar db/database.sql.gz | gzip -t`
# on the same >= 1 GB GitLab-format archive, in the same run. Prints wall times, the ratio
# and peak RSS (GNU time). Goal: ratio <= 1.0, rewind's peak RSS <= 50 MB.
#
# Usage: bench/verify.sh [ARCHIVE]
#   Without ARCHIVE, builds (once, then reuses) $BENCH_DIR/<id>_gitlab_backup.tar
#   (BENCH_DIR defaults to /tmp/rewind-bench-verify): a pg_dump-like plain SQL dump of
#   synthetic COPY data (about $BENCH_SQL_GB GB of SQL, default 2.4, as repeated
#   $BENCH_CHUNK_MB MB gzip members) through `gzip -c -1`,
#   an uploads.tar.gz made with `tar -C dir -cf - . | gzip`, a backup_information.yml,
#   and the outer tar made with `tar -C staging -cf`.
# Measured 2026-11-25 on the shared 2-core build machine (load ~5-8), release build, 1.1 GB
# archive (2.4 GB of SQL): rewind 12.3 s / 13.4 s, baseline 37.9 s / 34.9 s: ratio 0.35x;
# rewind peak RSS 10 MB.
# Environment: REWIND (binary; default: target/release/rewind, built if missing),
#   RUNS (default 2: each command runs RUNS times, alternating; best time kept).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/tmp/rewind-bench-verify}"
sql_gb="${BENCH_SQL_GB:-2.4}"
chunk_mb="${BENCH_CHUNK_MB:-200}"
runs="${RUNS:-2}"
id="1713867342_2024_04_23_16.10.3-ee"
archive="${1:-$bench_dir/${id}_gitlab_backup.tar}"

rewind="${REWIND:-$here/target/release/rewind}"
if [[ ! -x "$rewind" ]]; then
  echo "building $rewind ..." >&2
  (cd "$here" && cargo build --release --bin rewind >&2)
fi
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }

make_archive() {
  local staging="$bench_dir/staging"
  rm -rf "$staging" && mkdir -p "$staging/db" "$bench_dir/uploads"
  # A SQL dump chunk of ~$chunk_mb MB (a pg_dump header, then COPY blocks of random
  # hex), compressed once with `gzip -c -1`; the dump member is that gzip member repeated
  # until it holds ~$sql_gb GB of SQL: gzip's multi-member format, which `gzip -t` and
  # Rewind both read as one stream. This keeps generation quick on a busy machine while
  # every byte still goes through a real deflate decoder.
  local chunk="$bench_dir/chunk.sql.gz"
  echo "generating a ${chunk_mb} MB SQL chunk through gzip -c -1 ..." >&2
  python3 - "$chunk_mb" <<'PY' | gzip -c -1 > "$chunk"
import os, sys
target = int(float(sys.argv[1]) * 1e6)
out = sys.stdout.buffer
out.write(b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\n")
written, table = 0, 0
while written < target:
    table += 1
    out.write(b"DROP TABLE IF EXISTS public.t%d;\nCREATE TABLE public.t%d (id bigint NOT NULL, sha text, note text);\n" % (table, table))
    out.write(b"COPY public.t%d (id, sha, note) FROM stdin;\n" % table)
    rows = 0
    while rows < 2_000_000 and written < target:
        block = os.urandom(16 * 4096).hex()
        lines = []
        for i in range(0, len(block), 64):
            rows += 1
            lines.append("%d\t%s\tissue note %d with some text\n" % (rows, block[i:i + 64], rows % 977))
        data = "".join(lines).encode()
        out.write(data)
        written += len(data)
    out.write(b"\\.\n\n")
PY
  local copies
  copies=$(awk -v g="$sql_gb" -v c="$chunk_mb" 'BEGIN { n = int(g * 1000 / c + 0.999); print (n < 1) ? 1 : n }')
  echo "dump member: the chunk x $copies" >&2
  for _ in $(seq 1 "$copies"); do cat "$chunk"; done > "$staging/db/database.sql.gz"
  rm -f "$chunk"
  for i in $(seq 1 200); do head -c 20000 /dev/urandom > "$bench_dir/uploads/file$i.bin"; done
  tar -C "$bench_dir/uploads" -cf - . | gzip > "$staging/uploads.tar.gz"
  cat > "$staging/backup_information.yml" <<YML
:db_version: '20240410123456'
:backup_created_at: 2024-04-23 10:15:42.123456789 Z
:gitlab_version: 16.10.3-ee
:tar_version: tar (GNU tar) 1.34
:installation_type: omnibus-gitlab
:skipped: ''
:repositories_storages: ''
:repositories_paths: ''
:skip_repositories_paths: ''
:repositories_server_side: false
:full_backup_id:
YML
  tar -C "$staging" -cf "$archive.part" backup_information.yml db uploads.tar.gz
  mv "$archive.part" "$archive"
  rm -rf "$staging"
}

if [[ ! -f "$archive" ]]; then
  mkdir -p "$bench_dir"
  make_archive
fi
size=$(stat -c %s "$archive")
echo "archive: $archive ($(numfmt --to=iec "$size"))"
(( size >= 1000000000 )) || echo "warning: archive is smaller than 1 GB" >&2

# Warm the page cache equally for both.
cat "$archive" > /dev/null

measure() { # label, command...: prints "seconds maxrss_kb"
  local log; log=$(mktemp)
  /usr/bin/time -v -o "$log" "$@" > /dev/null
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  rm -f "$log"
  # h:mm:ss or m:ss.ss -> seconds
  echo "$wall" | awk -F: -v rss="$rss" '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f %d\n", s, rss }'
}

best_rw=999999; best_bl=999999; rss_rw=0; rss_bl=0
for run in $(seq 1 "$runs"); do
  read -r t r < <(measure "$rewind" inspect --verify "$archive")
  echo "run $run: rewind inspect --verify          ${t}s  peak RSS $((r / 1024)) MB"
  best_rw=$(awk -v a="$best_rw" -v b="$t" 'BEGIN { print (b < a) ? b : a }')
  (( r > rss_rw )) && rss_rw=$r
  read -r t r < <(measure bash -c 'tar -xOf "$1" db/database.sql.gz | gzip -t' _ "$archive")
  echo "run $run: tar -xOf | gzip -t (baseline)     ${t}s  peak RSS $((r / 1024)) MB (largest process)"
  best_bl=$(awk -v a="$best_bl" -v b="$t" 'BEGIN { print (b < a) ? b : a }')
  (( r > rss_bl )) && rss_bl=$r
done
ratio=$(awk -v a="$best_rw" -v b="$best_bl" 'BEGIN { printf "%.2f", a / b }')
echo "best: rewind ${best_rw}s, baseline ${best_bl}s, ratio ${ratio}x (goal <= 1.0); rewind peak RSS $((rss_rw / 1024)) MB (goal <= 50)"
