#!/bin/bash
# `make bench` of an older commit beside the working tree's HEAD, in the order old, new, new, old, each in a fresh
# directory, so that a drifting machine slows both alike (BENCHMARKS.md, session 6).
#   benchmarks/abba_pipeline.sh 7352f61 [ORDERS] [NEW_REV]   (NEW_REV: default the working tree's HEAD)
set -euo pipefail
old_rev=${1:?usage: benchmarks/abba_pipeline.sh OLD_REV [ORDERS] [NEW_REV]}
orders=${2:-10000000}
new_rev=${3:-HEAD}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
scratch=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$scratch/old" >/dev/null 2>&1 || true;
      git -C "$repo" worktree remove --force "$scratch/new" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
for which in old new; do
  rev=$([ "$which" = old ] && echo "$old_rev" || echo "$new_rev")
  git -C "$repo" worktree add -f -q "$scratch/$which" "$rev"
  (cd "$scratch/$which/dbt_project" && dbt parse --quiet)
done
i=0
for which in old new new old; do
  i=$((i + 1))
  echo "=== run $i: $which $(git -C "$scratch/$which" log --oneline -1 | cut -c1-8) $(date +%T)"
  (cd "$scratch/$which" && python benchmarks/pipeline.py --orders "$orders" --workdir "$scratch/run$i")
  rm -rf "$scratch/run$i"
done
