#!/usr/bin/env bash
# Runs the reference suite as two CI shards and checks that together they ran every
# scenario exactly once, and that every one passed.
#   ci/shards.sh
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build --release -q -p hil
for k in 1 2; do
  target/release/hil run scenarios/ --partition "$k/2" --json "$out/shard-$k.json"
done
target/release/hil check scenarios/ >/dev/null
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
ran = [s["path"] for k in (1, 2) for s in json.loads((out / f"shard-{k}.json").read_text())["scenarios"]]
expected = sorted(str(p) for p in pathlib.Path("scenarios").glob("*.yaml"))
twice = sorted({f for f in ran if ran.count(f) > 1})
missing = sorted(set(expected) - set(ran))
if twice or missing or len(ran) != len(expected):
    sys.exit(f"shards: ran {len(ran)} of {len(expected)}; twice: {twice}; missing: {missing}")
print(f"shards: {len(ran)} scenarios, each in exactly one of 2 shards")
PY
