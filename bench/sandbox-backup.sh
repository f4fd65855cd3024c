#!/usr/bin/env bash
# Benchmark of the sandbox builder: builds a sandbox tree with `rewind sandbox` at a scale
# and reports build time, archive size and the uncompressed size of the main dump.
#
#   bench/sandbox-backup.sh [SCALE] [gzip|zstd|none]
#
# Needs a release build (`cargo build --release`) and the PostgreSQL server package.
#
# Measured (debug build, 2 cores shared, load average ~20): scale 50 -> 335,201 rows,
# 92.5 MB plain main dump, 28.8 MB archive (gzip -1), 115 s wall, 52 MB peak RSS of rewind
# (flat: everything streams). Scale ~550 gives a >= 1 GB dump.
set -euo pipefail
scale=${1:-10}
compression=${2:-gzip}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/rewind
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
out=$(mktemp -d /tmp/rewind-bench-sandbox.XXXXXX)
trap 'rm -rf "$out"' EXIT
root=$out/root
/usr/bin/time -f '%e s wall, %M KB peak RSS (rewind)' \
  "$bin" sandbox --root "$root" --scale "$scale" --compression "$compression" --json > "$out/report.json"
archive=$(ls "$root"/var/opt/gitlab/backups/*_gitlab_backup.tar)
case $compression in
  gzip) dec=(gzip -dc) ;;
  zstd) dec=(zstd -dc) ;;
  none) dec=(cat) ;;
esac
dump_bytes=$(tar -xOf "$archive" db/database.sql.gz | "${dec[@]}" | wc -c)
echo "scale $scale, $compression"
cat "$out/report.json"
echo "archive: $(stat -c %s "$archive") bytes; uncompressed main dump: $dump_bytes bytes"
