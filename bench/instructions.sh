#!/usr/bin/env bash
# Counts the CPU instructions one iteration of a root-package benchmark costs
# at two revisions, with callgrind (valgrind), which counts instructions
# rather than time: the count repeats run to run whatever else the machine
# does, so small differences (a few percent) show where timings cannot.
#
#   bench/instructions.sh BASE_REV NEW_REV 'BenchmarkCommitSingle/process'
#
# Each revision's test binary runs the benchmark for 1,000 and 3,000
# iterations; the difference over 2,000 is the cost per iteration, without
# the setup. Go's asynchronous preemption is off (callgrind cannot follow
# its signals) and GOMAXPROCS is 1.
set -euo pipefail
base=$1 new=$2 bench=$3
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" 2>/dev/null; git worktree remove --force "$tmp/new" 2>/dev/null; rm -rf "$tmp"' EXIT
for rev in base new; do
  git worktree add -q --detach "$tmp/$rev" "${!rev}"
  (cd "$tmp/$rev" && go test -c -o "$tmp/$rev.test" .)
done
# cpu.rdtscp=off: valgrind 3.19 does not know RDTSCP, which the runtime uses on contended locks.
count() {
  GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$tmp/$1.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$2x" -test.count 1 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for rev in base new; do
  lo=$(count $rev 1000) hi=$(count $rev 3000)
  echo "$rev ${!rev}: $(( (hi - lo) / 2000 )) instructions per iteration"
done
