#!/usr/bin/env bash
# Run the real pi (@mariozechner/pi-coding-agent, pinned in package.json / package-lock.json
# beside this script) on node offline against the scripted fake LLM of ../real-omp on
# 127.0.0.1, with the contrib/omp-events.ts bridge loaded, and capture what pi writes.
#
#   run.sh OUTDIR            capture every scenario into OUTDIR/<scenario>/
#   run.sh --update-fixtures capture into a temp dir and refresh fixtures/real-pi/
#
# Per scenario: stdout.jsonl (--mode json), events.jsonl (--events), session.jsonl (the
# session file pi wrote), meta.json (command, exit code, versions).
#
# If npm cannot install the pinned package or node is missing or too old, it prints
# "skipped: <reason>" and exits 0, unless PI_E2E_REQUIRE=1, where that is a failure.
#
# Environment:
#   PI_E2E_CACHE    install directory (default: $XDG_CACHE_HOME or ~/.cache, /omp-langfuse/real-pi-<version>)
#   PI_E2E_TIMEOUT  seconds one pi run may take (default 120)
#   PI_E2E_REQUIRE  1 = fail instead of skipping
#   PI_E2E_LANGFUSE_URL, PI_E2E_BIN  a (mock) Langfuse and the omp-langfuse binary: with both,
#                   ext-json runs too (the extension alone, no --events, the keys exported:
#                   it starts omp-langfuse, which delivers there), beside ext-json-plain (no
#                   extension); engine.txt says whether every child finished afterwards.
set -euo pipefail

PI_VERSION=0.73.1
NODE_MAJOR_MIN=20
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
FAKE_LLM="$REPO/tests/e2e/real-omp/fake_llm.py"
RUN_TIMEOUT=${PI_E2E_TIMEOUT:-120}
SCENARIOS=(tools two-prompts compact retry)
NEUTRAL_HOME=/home/dev
NEUTRAL_REPO=/home/dev/omp-langfuse

E2E_NAME=real-pi
E2E_REQUIRE=${PI_E2E_REQUIRE:-0}
E2E_USAGE=2,22
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

parse_args "$@"
need_tools node npm python3 timeout setsid flock pgrep sha256sum
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$NODE_MAJOR" -ge "$NODE_MAJOR_MIN" ] || skip "pi needs node >= $NODE_MAJOR_MIN (found $(node --version 2>/dev/null || echo none))"
NODE=$(command -v node)

make_work pi-e2e

# Install (idempotent): the pinned lock into the cache, keyed by the lock's hash.
CACHE=${PI_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omp-langfuse/real-pi-$PI_VERSION}
install_pinned "$HERE" "$CACHE" "@mariozechner/pi-coding-agent@$PI_VERSION" \
	npm ci --no-audit --no-fund --loglevel=error
PI_CLI="$CACHE/node_modules/@mariozechner/pi-coding-agent/dist/cli.js"
[ -f "$PI_CLI" ] || skip "pi is not installed in $CACHE"
# (pi prints its version on stderr)
PI_V=$(env -i HOME="$WORK" PATH=/usr/local/bin:/usr/bin:/bin timeout 60 "$NODE" "$PI_CLI" --version 2>&1 | tr -d "[:space:]" || true)
[ "$PI_V" = "$PI_VERSION" ] || skip "pi does not run here (pi --version said: ${PI_V:-nothing})"

if [ "$UPDATE_FIXTURES" = 1 ]; then OUT="$WORK/out"; else OUT=$1; fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The fake LLM (OpenAI chat completions, scripted by the `[fake:NAME]` marker).
start_fake_llm "$FAKE_LLM" 800
log "pi $PI_VERSION on node $(node --version), fake LLM on 127.0.0.1:$PORT, output in $OUT"

# One scenario = a fresh HOME with a project and pi's agent dir (~/.pi/agent): the fake
# provider in models.json, and settings that make pi's own retry and compaction visible
# (no SDK-level retries; a small context window so a long tool output crosses the threshold).
CONTEXT_WINDOW=128000
prepare_home() { # $1 = home
	local home=$1
	mkdir -p "$home/project" "$home/.pi/agent" "$home/tmp"
	printf '# demo\n\nA tiny project for the pi end-to-end run.\n' >"$home/project/README.md"
	printf 'print("hello")\n' >"$home/project/main.py"
	cat >"$home/.pi/agent/models.json" <<EOF
{"providers": {"fakellm": {
  "baseUrl": "http://127.0.0.1:$PORT/v1", "api": "openai-completions", "apiKey": "sk-fake-e2e-key",
  "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
  "models": [{"id": "fake-model", "name": "Fake Model", "contextWindow": $CONTEXT_WINDOW, "maxTokens": 4096,
              "cost": {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}}]}}}
EOF
	cat >"$home/.pi/agent/settings.json" <<'EOF'
{"retry": {"baseDelayMs": 100, "provider": {"maxRetries": 0}},
 "compaction": {"reserveTokens": 2000, "keepRecentTokens": 1000}}
EOF
}

LLM_SEEN=0
# EXT=events (the bridge with --events), engine (the extension alone with the Langfuse keys:
# it starts omp-langfuse) or none.
EXT=events
run_scenario() { # $1 = scenario, rest = prompts
	local scenario=$1
	shift
	local home="$WORK/$scenario/home" dir="$OUT/$scenario" rc=0
	prepare_home "$home"
	rm -rf "$dir"
	mkdir -p "$dir"
	local ext_args=() engine_env=()
	case $EXT in
	events)
		: >"$dir/events.jsonl"
		ext_args=(-e "$REPO/contrib/omp-events.ts" --events "$dir/events.jsonl")
		;;
	engine)
		# Installed as a user would: copied into pi's extensions directory.
		mkdir -p "$home/.pi/agent/extensions"
		cp "$REPO/contrib/omp-events.ts" "$home/.pi/agent/extensions/"
		engine_env=(LANGFUSE_PUBLIC_KEY=pk-lf-test LANGFUSE_SECRET_KEY=sk-lf-test
			"LANGFUSE_BASE_URL=$PI_E2E_LANGFUSE_URL" "OMP_LANGFUSE_BIN=$PI_E2E_BIN"
			"OMP_LANGFUSE_STATE_DIR=$home/state" LANGFUSE_FLUSH_MS=200)
		;;
	esac
	(
		cd "$home/project"
		exec timeout -k 5 "$RUN_TIMEOUT" setsid env -i \
			HOME="$home" \
			PATH="/usr/local/bin:/usr/bin:/bin" \
			TMPDIR="$home/tmp" \
			LANG=C.UTF-8 TERM=dumb NO_COLOR=1 \
			NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
			"${engine_env[@]}" \
			"$NODE" "$PI_CLI" \
			--mode json --provider fakellm --model fake-model \
			"${ext_args[@]}" \
			"$@" >"$dir/stdout.jsonl" 2>"$dir/stderr.txt"
	) || rc=$?
	local n=0
	while IFS= read -r f; do
		n=$((n + 1))
		local name=session.jsonl
		[ "$n" -gt 1 ] && name="session-$n.jsonl"
		cp "$f" "$dir/$name"
	done < <(find "$home/.pi/agent/sessions" -mindepth 2 -maxdepth 2 -name '*.jsonl' -type f 2>/dev/null | sort)
	local seen
	seen=$(wc -l <"$LLM_LOG" 2>/dev/null || echo 0)
	tail -n +"$((LLM_SEEN + 1))" "$LLM_LOG" >"$dir/llm-requests.jsonl" 2>/dev/null || true
	LLM_SEEN=$seen
	python3 - "$dir" "$scenario" "$rc" "$PI_VERSION" "$(node --version)" "$EXT" "$@" <<'EOF'
import json, sys, pathlib
d, scenario, rc, pi, node, ext, *prompts = sys.argv[1:]
extension = {"events": " -e contrib/omp-events.ts --events events.jsonl",
             "engine": " (contrib/omp-events.ts in ~/.pi/agent/extensions, Langfuse keys exported)", "none": ""}[ext]
meta = {"scenario": scenario, "exitCode": int(rc), "pi": pi, "node": node,
        "command": "pi --mode json --provider fakellm --model fake-model" + extension,
        "prompts": prompts}
(pathlib.Path(d) / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
EOF
	log "$scenario: rc=$rc"
}

for scenario in "${SCENARIOS[@]}"; do
	case $scenario in
	tools) run_scenario tools "List the files, then show notes.txt. [fake:tools]" ;;
	two-prompts) run_scenario two-prompts "What files are here? [fake:p1]" "And what does main.py do? [fake:p2]" ;;
	compact)
		# The tool output pushes the context over (window - reserve); pi compacts after the
		# run, and the second prompt waits for it.
		CONTEXT_WINDOW=14000
		run_scenario compact "Count to 3000, then list the files. [fake:compact]" "And what does main.py do? [fake:p2]"
		CONTEXT_WINDOW=128000
		;;
	retry) run_scenario retry "Say something once the provider is back. [fake:retry1]" ;;
	esac
done
if [ -n "${PI_E2E_LANGFUSE_URL:-}" ] && [ -n "${PI_E2E_BIN:-}" ]; then
	EXT=engine run_scenario ext-json "List the files, then show notes.txt. [fake:tools]"
	EXT=none run_scenario ext-json-plain "List the files, then show notes.txt. [fake:tools]"
	# Every omp-langfuse child has finished (bounded), so the mock has all there is.
	verdict=$(engines_verdict)
	echo "$verdict" >"$OUT/ext-json/engine.txt"
	log "omp-langfuse children: $verdict"
fi
stop_fake_llm

# Scrub machine-specific paths and check that each scenario did what it is for.
python3 - "$OUT" "$WORK" "$REPO" "$PORT" "$NEUTRAL_HOME" "$NEUTRAL_REPO" "${SCENARIOS[@]}" <<'EOF'
import json, pathlib, sys
out, work, repo, port, home, neutral_repo, *scenarios = sys.argv[1:]
problems = []
for s in scenarios:
    d = pathlib.Path(out) / s
    for f in d.glob("*.jsonl"):
        t = f.read_text()
        t = t.replace(f"{work}/{s}/home", home).replace(repo, neutral_repo).replace(work, "/tmp/pi-e2e")
        t = t.replace(f"127.0.0.1:{port}", "127.0.0.1:8765")
        f.write_text(t)
    meta = json.loads((d / "meta.json").read_text())
    lines = lambda name: [json.loads(l) for l in (d / name).read_text().splitlines() if l.strip()] if (d / name).exists() else []
    stdout, events, session = lines("stdout.jsonl"), lines("events.jsonl"), lines("session.jsonl")
    types = [l.get("type") for l in stdout]
    def expect(cond, what):
        if not cond:
            problems.append(f"{s}: {what}")
    expect(meta["exitCode"] == 0, f"pi exited {meta['exitCode']}")
    stderr = (d / "stderr.txt").read_text()
    expect(stderr.strip() == "", f"stderr: {stderr[:300]}")
    expect(types[:1] == ["session"], "stdout does not start with the session header")
    expect(events and events[0].get("type") == "session_start", "the bridge wrote no session_start")
    expect(session and session[0].get("type") == "session", "no session file")
    if s == "tools":
        expect(any(l.get("type") == "tool_execution_end" and l.get("isError") for l in stdout), "no failing tool")
    if s == "compact":
        expect("compaction_start" in types and "compaction_end" in types, "no compaction on stdout")
        expect(any(e.get("type") == "compaction" for e in session), "no compaction entry in the session")
    if s == "retry":
        expect("auto_retry_start" in types and "auto_retry_end" in types, "no auto-retry on stdout")
    (d / "stderr.txt").unlink()
    print(f"{s}: stdout {len(stdout)}, events {len(events)}, session {len(session)} lines")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
EOF

if [ "$UPDATE_FIXTURES" = 1 ]; then
	dest="$REPO/fixtures/real-pi"
	mkdir -p "$dest"
	for scenario in "${SCENARIOS[@]}"; do
		rm -rf "${dest:?}/$scenario"
		cp -r "$OUT/$scenario" "$dest/$scenario"
	done
	log "fixtures refreshed in $dest"
fi
echo "real-pi e2e: ok (${SCENARIOS[*]})"
