#!/usr/bin/env bash
# Mutation testing for one source file or module, with the tests that cover it.
#
#   scripts/mutants.sh <file-or-module> [--shard k/n] [--timeout S] [-- extra cargo-mutants args]
#
# Examples:
#   scripts/mutants.sh src/harness/check/        # every file of the oracle
#   scripts/mutants.sh src/frame.rs --timeout 120
#   scripts/mutants.sh src/queue/ring.rs --shard 1/2
#
# cargo-mutants changes one operator, condition or return value at a time,
# rebuilds, and runs only the test targets listed for that file below. A
# mutant the tests do not notice is "missed". Mutants that cannot matter are
# listed, each with its reason, in scripts/mutants-skip.txt and are not run.
# Results go to target/mutants-out/<name>/mutants.out/ (outcomes.json, caught.txt, missed.txt ...).
#
# Runs at low priority with one job: set MUTANTS_JOBS to change the job count.
# Not part of `cargo test`.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

[[ $# -ge 1 ]] || usage
target="$1"
shift
shard=""
timeout=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --shard) shard="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --) shift; extra+=("$@"); break ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
done

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants is not installed. Install it with:" >&2
    echo "    cargo install --locked cargo-mutants" >&2
    exit 1
fi

# file glob -> test targets ("lib" = the library's unit tests; the oracle has
# none, so its row leaves them out). The first
# matching row wins, so the more specific rows come first.
table=(
    "src/harness/check/*.rs|oracle"
    "src/harness/journal.rs|lib history queue"
    "src/harness/payload.rs|lib oracle decoder pipe"
    "src/harness/fault.rs|lib oracle decoder"
    "src/frame.rs|lib decoder pipe python_interop"
    "src/queue/ring.rs|lib queue lifecycle concurrent"
    "src/queue/put.rs|lib queue lifecycle concurrent"
    "src/queue/get.rs|lib queue lifecycle concurrent"
    "src/queue/*.rs|lib queue lifecycle concurrent"
    "src/joinable.rs|lib joinable"
    "src/fifo/open.rs|lib fifo fifo_writer_fd exhaustion"
    "src/fifo/*.rs|lib fifo fifo_writer_fd"
)

case "$target" in
    */) glob="${target}*.rs" ;;
    *.rs) glob="$target" ;;
    *) if [[ -d "$target" ]]; then glob="${target%/}/*.rs"; else glob="$target"; fi ;;
esac
[[ "$glob" == src/* ]] || glob="src/${glob#./}"

tests=""
for row in "${table[@]}"; do
    pattern="${row%%|*}"
    # shellcheck disable=SC2053  # the pattern is a glob on purpose
    if [[ "$glob" == $pattern ]]; then
        tests="${row#*|}"
        break
    fi
done
if [[ -z "$tests" ]]; then
    echo "no test table entry for $glob; add one to $0" >&2
    exit 2
fi

# Given to every cargo command (-C), not only to `cargo test` (after `--`):
# cargo-mutants' build step would otherwise build every test and example.
test_args=()
for t in $tests; do
    if [[ "$t" == lib ]]; then test_args+=(-C --lib); else test_args+=(-C "--test=$t"); fi
done

# Skip list: one regex per line, each with a `# reason` comment above it.
exclude_args=()
skip="$root/scripts/mutants-skip.txt"
if [[ -f "$skip" ]]; then
    while IFS= read -r line; do
        [[ -z "$line" || "$line" == \#* ]] && continue
        exclude_args+=(--exclude-re "$line")
    done <"$skip"
fi

name="$(echo "${glob%.rs}" | sed 's#^src/##; s#[/*]#_#g; s#_\+$##')"
[[ -n "$shard" ]] && name="${name}-shard${shard/\//of}"
out="${MUTANTS_OUT:-$root/target/mutants-out}/$name"
mkdir -p "$out"

args=(mutants --package ipc-harness --file "$glob" -j "${MUTANTS_JOBS:-1}"
      --output "$out" --no-shuffle --cap-lints true)
[[ -n "$shard" ]] && args+=(--shard "$shard")
[[ -n "$timeout" ]] && args+=(--timeout "$timeout")
args+=("${test_args[@]}" "${exclude_args[@]}" "${extra[@]}")

# Dependencies stay built between runs: every run's scratch copy shares one
# target directory (the crate itself is rebuilt once per run).
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$root/target/mutants}"
# No debug info, and the crate itself unoptimised (its dependencies keep
# the test profile's): each mutant compiles and links in less time.
export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-false}"
args+=(-C "--config=profile.test.package.ipc-harness.opt-level=0")

for a in "${extra[@]}"; do
    # Listing only: nothing to sum up.
    if [[ "$a" == --list ]]; then exec nice -n 10 cargo "${args[@]}"; fi
done

echo "mutating $glob with tests: $tests"
start=$(date +%s)
set +e
nice -n 10 cargo "${args[@]}"
status=$?
set -e
elapsed=$(( $(date +%s) - start ))

dir="$out/mutants.out"
count() { if [[ -f "$dir/$1.txt" ]]; then grep -c . "$dir/$1.txt" || true; else echo 0; fi; }
caught=$(count caught); missed=$(count missed); timeouts=$(count timeout); unviable=$(count unviable)
viable=$(( caught + missed + timeouts ))
echo
echo "== $glob: caught $caught, missed $missed, timeout $timeouts, unviable $unviable"
if (( viable > 0 )); then
    echo "== score: $(( (caught + timeouts) * 1000 / viable / 10 )).$(( (caught + timeouts) * 1000 / viable % 10 ))% of viable mutants caught (timeouts count as caught)"
fi
echo "== wall time: $(( elapsed / 60 ))m$(( elapsed % 60 ))s"
if (( missed > 0 )); then
    echo "== missed:"
    sed 's/^/   /' "$dir/missed.txt"
fi
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: pass that on.
exit "$status"
