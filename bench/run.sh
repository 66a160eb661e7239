#!/usr/bin/env bash
# The performance benchmark (README "Performance"). From a fresh clone:
#
#   bash bench/run.sh              # 1 GiB per format
#   BENCH_BYTES=100M bash bench/run.sh   # a quick run (also: bash bench/run.sh 100M)
#
# Builds the release binary and the three helper examples (gen_omp, parse_floor,
# mock_langfuse), generates the seeded inputs once (cached in target/bench/, or BENCH_DIR),
# and prints one table: per format, the parse floor (a bare serde_json line loop), this
# tool's --dry-run (MB/s, observations/s, ratio to the floor), `jq -c .` when jq is
# installed, peak RSS, and sending to a loopback mock Langfuse (OTLP, gzip); then startup
# time on empty input. MB = 10^6 bytes. Nothing here asserts: the figures are for reading.
#
# Settings (environment): BENCH_BYTES (1G), BENCH_SEED (1), BENCH_DIR (target/bench),
# BENCH_RUNS (2: each timing is the best of this many runs; the machines are noisy),
# BENCH_STARTUP_RUNS (50), BENCH_FORMATS ("live extension session-log"), BENCH_NO_JQ=1,
# BENCH_LATENCY_MS (150: the sending row against a mock that answers every request this
# late, as over a WAN; 0 skips it) on BENCH_LATENCY_BYTES (100M) of session log.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-${BENCH_BYTES:-1G}}
SEED=${BENCH_SEED:-1}
DATA=${BENCH_DIR:-target/bench}
RUNS=${BENCH_STARTUP_RUNS:-50}
BEST_OF=${BENCH_RUNS:-2}
FORMATS=${BENCH_FORMATS:-live extension session-log}

command -v cargo >/dev/null || { echo "cargo is required" >&2; exit 2; }
echo "building (release)…" >&2
cargo build --release --locked --quiet --bin omp-langfuse \
    --example gen_omp --example parse_floor --example mock_langfuse
BIN=target/release/omp-langfuse
EX=target/release/examples
mkdir -p "$DATA"
WORK=$(mktemp -d)
MOCK_PID= SLOW_PID=
cleanup() {
    if [ -n "$MOCK_PID" ]; then kill "$MOCK_PID" 2>/dev/null || true; fi
    if [ -n "$SLOW_PID" ]; then kill "$SLOW_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Peak RSS needs GNU time; without it the column says so.
TIME_BIN=
if [ -x /usr/bin/time ] && /usr/bin/time -f %M true >/dev/null 2>&1; then TIME_BIN=/usr/bin/time; fi

# run LABEL CMD... : runs CMD $BEST_OF times (stdout to /dev/null, stderr kept in
# $WORK/LABEL.err) and sets SECS (the best wall time), RSS_KB (the largest peak, or empty)
# and STATUS (the last exit status).
run() {
    local label=$1; shift
    local t0 t1 secs rss
    SECS= RSS_KB= STATUS=0
    for _ in $(seq "$BEST_OF"); do
        [ -n "${BEFORE_RUN:-}" ] && eval "$BEFORE_RUN"
        t0=$EPOCHREALTIME
        if [ -n "$TIME_BIN" ]; then
            "$TIME_BIN" -f %M -o "$WORK/$label.rss" "$@" >/dev/null 2>"$WORK/$label.err" || STATUS=$?
        else
            "$@" >/dev/null 2>"$WORK/$label.err" || STATUS=$?
        fi
        t1=$EPOCHREALTIME
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$SECS" ] || awk -v a="$secs" -v b="$SECS" 'BEGIN { exit !(a < b) }'; then
            SECS=$secs
        fi
        if [ -n "$TIME_BIN" ]; then
            rss=$(tail -n 1 "$WORK/$label.rss")
            if [ -z "$RSS_KB" ] || [ "$rss" -gt "$RSS_KB" ]; then RSS_KB=$rss; fi
        fi
    done
}

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# The loopback mock Langfuse (lean: counts bodies, does not inflate or check them).
"$EX/mock_langfuse" >"$WORK/mock.url" 2>"$WORK/mock.err" &
MOCK_PID=$!
for _ in $(seq 50); do [ -s "$WORK/mock.url" ] && break; sleep 0.1; done
MOCK_URL=$(head -n 1 "$WORK/mock.url")

HAVE_JQ=
if [ -z "${BENCH_NO_JQ:-}" ] && command -v jq >/dev/null; then HAVE_JQ=1; fi

ROWS=()
for fmt in $FORMATS; do
    input="$DATA/$fmt-$SIZE-seed$SEED.jsonl"
    if [ ! -s "$input" ]; then
        echo "generating $input…" >&2
        "$EX/gen_omp" --bytes "$SIZE" --format "$fmt" --seed "$SEED" --out "$input.tmp" 2>/dev/null
        mv "$input.tmp" "$input"
    fi
    bytes=$(wc -c <"$input")
    cat "$input" >/dev/null # warm the page cache: every contender reads from memory
    echo "measuring $fmt ($((bytes / 1000000)) MB)…" >&2

    run floor "$EX/parse_floor" "$input"
    floor_s=$SECS

    run dry "$BIN" --dry-run "$input"
    dry_s=$SECS dry_rss=$RSS_KB dry_status=$STATUS
    obs=$(grep -o '[0-9]* observations' "$WORK/dry.err" | head -n 1 | cut -d' ' -f1)

    run dryotlp "$BIN" --dry-run=otlp "$input"
    otlp_s=$SECS

    jq_cell="not installed" jq_ratio="-"
    if [ -n "$HAVE_JQ" ]; then
        BEST_OF=1 run jq jq -c . "$input"
        jq_cell=$(mbps "$bytes" "$SECS")
        jq_ratio=$(ratio "$(mbps "$bytes" "$dry_s")" "$jq_cell")
    fi

    BEFORE_RUN='rm -rf "$WORK/state"' run send env LANGFUSE_PUBLIC_KEY=pk-lf-test LANGFUSE_SECRET_KEY=sk-lf-test \
        "$BIN" --base-url "$MOCK_URL" --transport otlp --state-dir "$WORK/state" "$input"
    send_s=$SECS send_rss=$RSS_KB send_status=$STATUS
    note=""
    [ "$dry_status" = 0 ] || note="$note dry-run exit $dry_status;"
    [ "$send_status" = 0 ] || note="$note send exit $send_status: $(tail -n 1 "$WORK/send.err");"

    rss_cell="n/a (no GNU time)"
    if [ -n "$dry_rss" ]; then rss_cell="$((dry_rss / 1024)) / $((send_rss / 1024))"; fi
    ROWS+=("$(printf '| %-11s | %6d | %6s | %6s | %6s | %8s | %12s | %5s | %11s | %6s | %6s | %5s |%s' \
        "$fmt" "$((bytes / 1000000))" "$(mbps "$bytes" "$floor_s")" "$(mbps "$bytes" "$dry_s")" \
        "$(ratio "$floor_s" "$dry_s")" "$(awk -v o="${obs:-0}" -v s="$dry_s" 'BEGIN { printf "%.0f", o / s }')" \
        "$jq_cell" "$jq_ratio" "$rss_cell" "$(mbps "$bytes" "$otlp_s")" "$(mbps "$bytes" "$send_s")" \
        "$(ratio "$otlp_s" "$send_s")" "${note:+ $note}")")
done

# Sending at WAN latency: a backfill of a smaller session log to a mock that answers every
# request LATENCY_MS late; observations per second and the most requests the mock saw at once.
LATENCY_MS=${BENCH_LATENCY_MS:-150}
LATENCY_SIZE=${BENCH_LATENCY_BYTES:-100M}
LATENCY_LINE=
if [ "$LATENCY_MS" != 0 ]; then
    input="$DATA/session-log-$LATENCY_SIZE-seed$SEED.jsonl"
    if [ ! -s "$input" ]; then
        echo "generating $input…" >&2
        "$EX/gen_omp" --bytes "$LATENCY_SIZE" --format session-log --seed "$SEED" --out "$input.tmp" 2>/dev/null
        mv "$input.tmp" "$input"
    fi
    "$EX/mock_langfuse" --delay-ms "$LATENCY_MS" --stats "$WORK/slow.stats" >"$WORK/slow.url" 2>"$WORK/slow.log" &
    SLOW_PID=$!
    for _ in $(seq 50); do [ -s "$WORK/slow.url" ] && break; sleep 0.1; done
    echo "measuring sending at $LATENCY_MS ms per request…" >&2
    # One run only (the mock's counts are per run), so the file is read into the page cache
    # first: after gigabytes of the other rows it may have left it.
    cat "$input" >/dev/null
    BEST_OF=1 BEFORE_RUN='rm -rf "$WORK/state"' run slow env LANGFUSE_PUBLIC_KEY=pk-lf-test LANGFUSE_SECRET_KEY=sk-lf-test \
        "$BIN" --base-url "$(head -n 1 "$WORK/slow.url")" --transport otlp --state-dir "$WORK/state" "$input"
    slow_s=$SECS slow_rss=$RSS_KB slow_status=$STATUS
    sleep 0.3 # the mock rewrites its stats every 100 ms
    slow_obs=$(grep -o '[0-9]* observations' "$WORK/slow.err" | head -n 1 | cut -d' ' -f1)
    slow_posts=$(grep -o 'posts=[0-9]*' "$WORK/slow.stats" | cut -d= -f2)
    slow_flight=$(grep -o 'max_in_flight=[0-9]*' "$WORK/slow.stats" | cut -d= -f2)
    kill "$SLOW_PID" 2>/dev/null || true
    SLOW_PID=
    LATENCY_LINE="sending at $LATENCY_MS ms per request ($((${slow_obs:-0})) observations, $LATENCY_SIZE of session log): \
$(awk -v o="${slow_obs:-0}" -v s="$slow_s" 'BEGIN { printf "%.0f", o / s }') observations/s, \
${slow_posts:-?} requests, at most ${slow_flight:-?} in flight, ${slow_s} s, \
peak RSS $(( ${slow_rss:-0} / 1024 )) MB$([ "$slow_status" = 0 ] || echo ", exit $slow_status")"
fi

# Startup: a whole run on an empty file, median of $RUNS; /bin/true for the fork+exec cost.
: >"$WORK/empty.jsonl"
median_ms() {
    local samples=()
    for _ in $(seq "$RUNS"); do
        local t0=$EPOCHREALTIME
        "$@" >/dev/null 2>&1 || true
        local t1=$EPOCHREALTIME
        samples+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')")
    done
    printf '%s\n' "${samples[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
startup=$(median_ms "$BIN" --dry-run -q "$WORK/empty.jsonl")
baseline=$(median_ms /bin/true)

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
echo
echo "omp-langfuse benchmark: $SIZE per format, seed $SEED; $(nproc) cores, ${cpu:-unknown CPU}, ${mem:-? GiB}"
echo
echo "| format      | MB     | floor  | dry    | ×floor | obs/s    | jq -c .      | ×jq   | RSS MB      | otlp   | send   | ×otlp |"
echo "|             |        | MB/s   | MB/s   |        |          | MB/s         |       | dry / send  | MB/s   | MB/s   |       |"
echo "| ----------- | ------ | ------ | ------ | ------ | -------- | ------------ | ----- | ----------- | ------ | ------ | ----- |"
printf '%s\n' "${ROWS[@]}"
echo
if [ -n "$LATENCY_LINE" ]; then
    echo "$LATENCY_LINE"
    echo
fi
echo "startup on empty input: $startup ms (median of $RUNS; /bin/true: $baseline ms)"
echo
echo "floor: parse each line into serde_json::Value (examples/parse_floor.rs). dry: --dry-run"
echo "(legacy ingestion JSON to /dev/null). otlp: --dry-run=otlp. send: OTLP with gzip to the"
echo "loopback mock, ×otlp = send throughput / otlp dry-run throughput. RSS: peak, dry-run / send."
echo "Times: best of $BEST_OF runs (jq: 1)."
echo "Targets: ×floor >= 0.5, ×jq >= 10, RSS <= 64 MB, ×otlp >= 0.8, startup <= 5 ms;"
echo "at 150 ms per request >= 10,000 observations/s, RSS <= 64 MB."
