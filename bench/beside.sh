#!/usr/bin/env bash
# Beside-and-swap against snapshot + in place, on the same data: `rewind drill --auto` at a
# scale, run once with the default strategy (beside: load into a new database, verify,
# rename) and once with --in-place (safety snapshot before the package step, drop, load),
# alternating, and the drill's step times compared. The in-place snapshot is taken inside
# the "roll back" step (before the package step), so both that step and "restore databases"
# are reported; the package step itself (stand-in packages) is the same for both.
#
# Usage: bench/beside.sh [SCALE] [ROUNDS]     (default: 100 2; scale 1 is about 1.9 MB of
#                                              plain dump, 100 about 190 MB)
# Env:   BIN=path of the rewind binary (default: target/release/rewind, else debug)
# Needs: root, the PostgreSQL server package, git (what the drill needs).
#
# Measured 2026-11-29 (release build, 2 cores shared with other developers' builds, load
# average 6-7; PG 15, drill defaults: jobs = CPUs; one round, scale 60, ~115 MB plain main
# dump; "restore databases" also restores the file components and repositories, the same
# work for both):
#   strategy   roll back   restore db      sum
#   beside          2.6s        74.1s     76.7s   (no snapshot; load into a new DB, rename)
#   in-place       15.3s       145.9s    161.2s   (snapshot in roll back; drop, load)
# The snapshot (pg_dump -Fc) accounts for ~12.7 s of the roll back step; the rest of the
# in-place restore's extra time is the drop and loading into a database whose old relations
# were just dropped, plus this machine's noise (one round only: treat as indicative).
set -euo pipefail
scale=${1:-100}
rounds=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$here/target/release/rewind}
[ -x "$bin" ] || bin=$here/target/debug/rewind
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/rewind-bench-beside.XXXXXX")
trap 'rm -rf "$out"' EXIT

step_secs() { # file, step-name prefix -> seconds
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["report"]
def secs(d):
    return d if isinstance(d, (int, float)) else d["secs"] + d["nanos"] / 1e9
print(sum(secs(s["duration"]) for s in r["steps"] if s["name"].startswith(sys.argv[2])))
PY
}

echo "binary: $bin; scale $scale; $rounds round(s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-7s %12s %12s %12s\n' strategy round "roll back" "restore db" "sum"
for round in $(seq 1 "$rounds"); do
  for strategy in beside in-place; do
    flags=()
    [ "$strategy" = in-place ] && flags=(--in-place)
    f=$out/$strategy-$round.json
    if ! "$bin" --json drill --auto --scale "$scale" "${flags[@]}" >"$f" 2>"$out/err"; then
      echo "drill ($strategy) failed:" >&2; cat "$out/err" >&2; python3 -m json.tool "$f" >&2 || true
      exit 1
    fi
    rb=$(step_secs "$f" "roll back")
    rs=$(step_secs "$f" "restore databases")
    printf '%-9s %-7s %11.1fs %11.1fs %11.1fs\n' "$strategy" "$round" "$rb" "$rs" \
      "$(python3 -c "print($rb + $rs)")"
  done
done
