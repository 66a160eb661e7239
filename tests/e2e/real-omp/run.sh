#!/usr/bin/env bash
# Run the real omp (pinned in package.json / package-lock.json beside this script) offline
# against a scripted fake LLM on 127.0.0.1, with the contrib/omp-events.ts bridge loaded,
# and capture what omp writes.
#
#   run.sh OUTDIR            capture every scenario into OUTDIR/<scenario>/
#   run.sh --update-fixtures capture into a temp dir and refresh fixtures/real/
#
# Per scenario: stdout.jsonl (--mode json), events.jsonl (--events), session.jsonl (the
# session file omp wrote), sessions/ (omp's whole sessions directory, subagent sessions
# included), stderr.txt, llm-requests.jsonl (what the fake LLM saw) and meta.json
# (command, exit code, versions, where the session files were).
#
# If npm cannot install the pinned packages (no registry) or Bun cannot run here, it prints
# "skipped: <reason>" and exits 0, unless OMP_E2E_REQUIRE=1, where that is a failure.
#
# Environment:
#   OMP_E2E_CACHE    install directory (default: $XDG_CACHE_HOME or ~/.cache, /omp-langfuse/real-omp-<versions>)
#   OMP_E2E_TIMEOUT  seconds one omp run may take (default 120)
#   OMP_E2E_REQUIRE  1 = fail instead of skipping
#   OMP_E2E_SCENARIOS  the scenarios to run (default: all)
#   OMP_E2E_LANGFUSE_URL, OMP_E2E_BIN  a (mock) Langfuse and the omp-langfuse binary: with
#                    both, the extension scenarios run too, where the extension alone (in
#                    ~/.omp/agent/extensions, the keys exported) starts omp-langfuse, which
#                    delivers there: ext-json and ext-print (each beside a twin run without
#                    the extension, *-plain), ext-subagent, ext-killed (omp killed with -9 in
#                    a tool), ext-nobin and ext-badkeys (print mode: no binary, keys
#                    rejected) and ext-tui (the TUI in tmux: a prompt typed, the answer and
#                    the footer item awaited, /exit). Per scenario also stdout.txt (print
#                    mode), screen.txt (the TUI's last screen) and engine.txt (whether every
#                    omp-langfuse child had finished).
set -euo pipefail

OMP_VERSION=18.2.3
BUN_VERSION=1.3.14
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
RUN_TIMEOUT=${OMP_E2E_TIMEOUT:-120}
SCENARIOS=(${OMP_E2E_SCENARIOS:-tools two-prompts retry killed compact subagent combined edit})
# Neutral paths that replace machine-specific ones in everything captured.
NEUTRAL_HOME=/home/dev
NEUTRAL_REPO=/home/dev/omp-langfuse
NEUTRAL_CACHE=/opt/omp

E2E_NAME=real-omp
E2E_REQUIRE=${OMP_E2E_REQUIRE:-0}
E2E_USAGE=2,31
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

parse_args "$@"
need_tools node npm python3 timeout setsid flock pgrep sha256sum
make_work omp-e2e

# --------------------------------------------------------------------------------------
# Install (idempotent): npm install of the pinned lock into the cache, keyed by the lock's hash.
# --------------------------------------------------------------------------------------
CACHE=${OMP_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omp-langfuse/real-omp-$OMP_VERSION-bun-$BUN_VERSION}
install_pinned "$HERE" "$CACHE" "@oh-my-pi/pi-coding-agent@$OMP_VERSION and bun@$BUN_VERSION" \
	npm install --no-audit --no-fund --no-save --loglevel=error

# The bun package's postinstall normally puts the binary in bun/bin; the platform packages
# carry it too, for when install scripts did not run.
BUN=
for candidate in \
	"$CACHE/node_modules/bun/bin/bun.exe" \
	"$CACHE"/node_modules/@oven/bun-linux-x64/bin/bun \
	"$CACHE"/node_modules/@oven/bun-linux-x64-baseline/bin/bun \
	"$CACHE"/node_modules/@oven/bun-linux-aarch64/bin/bun \
	"$CACHE"/node_modules/@oven/bun-linux-x64-musl/bin/bun; do
	if [ -x "$candidate" ] && [ "$(timeout 20 "$candidate" --version 2>/dev/null)" = "$BUN_VERSION" ]; then
		BUN=$candidate
		break
	fi
done
[ -n "$BUN" ] || skip "no working bun $BUN_VERSION binary in $CACHE/node_modules"
OMP_CLI="$CACHE/node_modules/@oh-my-pi/pi-coding-agent/dist/cli.js"
[ -f "$OMP_CLI" ] || skip "omp is not installed in $CACHE"
BUN_DIR="$WORK/bin"
mkdir -p "$BUN_DIR"
ln -s "$BUN" "$BUN_DIR/bun" # omp may start `bun` by name

if [ "$UPDATE_FIXTURES" = 1 ]; then
	OUT="$WORK/out"
else
	OUT=$1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# --------------------------------------------------------------------------------------
# The fake LLM
# --------------------------------------------------------------------------------------
start_fake_llm "$HERE/fake_llm.py" 1500

OMP_V=$(env -i HOME="$WORK" PATH="$BUN_DIR:/usr/bin:/bin" timeout 60 "$BUN" "$OMP_CLI" --version 2>/dev/null || true)
case "$OMP_V" in
*"$OMP_VERSION"*) ;;
*) skip "omp does not run here (omp --version said: ${OMP_V:-nothing})" ;;
esac
log "omp $OMP_VERSION on bun $BUN_VERSION, fake LLM on 127.0.0.1:$PORT, output in $OUT"

# --------------------------------------------------------------------------------------
# One scenario = a fresh HOME with a project dir and a private agent dir.
# --------------------------------------------------------------------------------------
# Extra settings for the agent's config.yml (per scenario), and where --events writes
# (a file in the scenario's directory unless set to `-`: omp's stdout).
AGENT_CONFIG=
EVENTS_TO=
# How omp is started: EXT=events (the bridge with --events, as in the recorded scenarios),
# engine (the extension alone with the Langfuse keys: it starts omp-langfuse) or none;
# MODE=json or print.
EXT=events
MODE=json
prepare_home() { # $1 = home
	local home=$1
	mkdir -p "$home/project" "$home/.omp/agent" "$home/tmp"
	printf '# demo\n\nA tiny project for the omp end-to-end run.\n' >"$home/project/README.md"
	printf 'print("hello")\n' >"$home/project/main.py"
	cat >"$home/.omp/agent/models.yml" <<EOF
providers:
  fakellm:
    baseUrl: http://127.0.0.1:$PORT/v1
    api: openai-completions
    auth: apiKey
    apiKey: sk-fake-e2e-key
    models:
      - id: fake-model
        name: Fake Model
        contextWindow: 128000
        maxTokens: 4096
        cost: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 }
EOF
	if [ -n "$AGENT_CONFIG" ]; then printf '%s' "$AGENT_CONFIG" >"$home/.omp/agent/config.yml"; fi
}

# The extension installed for every session, as the README says. $1 = home
install_extension() {
	mkdir -p "$1/.omp/agent/extensions"
	cp "$REPO/contrib/omp-events.ts" "$1/.omp/agent/extensions/"
}

# What the extension needs to start omp-langfuse (no spaces in any value). $1 = home
engine_env() {
	printf '%s\n' LANGFUSE_PUBLIC_KEY=pk-lf-test LANGFUSE_SECRET_KEY=sk-lf-test \
		"LANGFUSE_BASE_URL=$OMP_E2E_LANGFUSE_URL" "OMP_LANGFUSE_BIN=$OMP_E2E_BIN" \
		"OMP_LANGFUSE_STATE_DIR=$1/state" LANGFUSE_FLUSH_MS=200
}

# Run omp bounded in time (timeout), in a session of its own (setsid, so its leftovers can be
# killed as a group), with a cleared environment. Runs in the background.
# $1 = scenario, $2 = home, rest = omp arguments. Sets OMP_PID (timeout) and BUN_PID (omp).
start_omp() {
	local scenario=$1 home=$2
	shift 2
	local dir="$OUT/$scenario"
	rm -rf "$dir"
	mkdir -p "$dir"
	: >"$dir/events.jsonl"
	local ext_args=(-e "$REPO/contrib/omp-events.ts" --events "$dir/events.jsonl")
	local ext_shown="-e contrib/omp-events.ts --events events.jsonl"
	if [ "$EVENTS_TO" = - ]; then
		ext_args=(-e "$REPO/contrib/omp-events.ts" --events=-)
		ext_shown="-e contrib/omp-events.ts --events=-"
	fi
	case $EXT in
	engine)
		# Installed as a user would: copied into the agent's extensions directory.
		install_extension "$home"
		ext_args=()
		ext_shown="(contrib/omp-events.ts in ~/.omp/agent/extensions, Langfuse keys exported)"
		rm -f "$dir/events.jsonl"
		;;
	none)
		ext_args=()
		ext_shown="(no extension)"
		rm -f "$dir/events.jsonl"
		;;
	esac
	local engine_env=()
	if [ "$EXT" = engine ]; then engine_env=($(engine_env "$home") ${ENGINE_OVERRIDE:-}); fi
	local mode_args=(--mode json) out_file=stdout.jsonl
	if [ "$MODE" = print ]; then
		mode_args=(--print)
		out_file=stdout.txt
	fi
	(
		cd "$home/project"
		exec timeout -k 5 "$RUN_TIMEOUT" setsid env -i \
			HOME="$home" \
			PI_CODING_AGENT_DIR="$home/.omp/agent" \
			PATH="$BUN_DIR:/usr/local/bin:/usr/bin:/bin" \
			TMPDIR="$home/tmp" \
			LANG=C.UTF-8 TERM=dumb NO_COLOR=1 \
			NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
			"${engine_env[@]}" \
			"$BUN" "$OMP_CLI" \
			"${mode_args[@]}" --model fakellm/fake-model \
			"${ext_args[@]}" \
			"$@" >"$dir/$out_file" 2>"$dir/stderr.txt"
	) &
	OMP_PID=$!
	BUN_PID=
	for _ in $(seq 100); do
		BUN_PID=$(pgrep -P "$OMP_PID" | head -1 || true)
		[ -n "$BUN_PID" ] && break
		kill -0 "$OMP_PID" 2>/dev/null || break
		sleep 0.05
	done
	printf '%s\n' "omp ${mode_args[*]} --model fakellm/fake-model $ext_shown$(printf ' %q' "$@")" >"$dir/command.txt"
}

# Wait for omp; then kill whatever it left behind in its session. Sets RC.
wait_omp() {
	RC=0
	# (braces + 2>/dev/null: no "Killed" job notice from bash for the killed scenario)
	{ wait "$OMP_PID"; } 2>/dev/null || RC=$?
	if [ -n "$BUN_PID" ]; then kill -KILL -- "-$BUN_PID" 2>/dev/null || true; fi
}

finish_scenario() { # $1 = scenario, $2 = home, $3 = rc, $4 = seconds
	local scenario=$1 home=$2 rc=$3 secs=$4 dir="$OUT/$1"
	# The top-level session file(s) omp wrote (normally exactly one; subagent sessions sit
	# one level deeper), and the whole sessions directory as omp left it.
	local n=0
	while IFS= read -r f; do
		n=$((n + 1))
		local name=session.jsonl
		[ "$n" -gt 1 ] && name="session-$n.jsonl"
		cp "$f" "$dir/$name"
	done < <(find "$home/.omp/agent/sessions" -mindepth 2 -maxdepth 2 -name '*.jsonl' -type f 2>/dev/null | sort)
	find "$home/.omp/agent/sessions" -name '*.jsonl' -type f 2>/dev/null | sort | while IFS= read -r f; do
		echo "${f#"$home/.omp/agent/"}" >>"$dir/session-paths.txt"
	done
	if [ -d "$home/.omp/agent/sessions" ]; then cp -r "$home/.omp/agent/sessions" "$dir/sessions"; fi
	# What the fake LLM saw for this scenario (the log is shared; take the new lines).
	local seen
	seen=$(wc -l <"$LLM_LOG" 2>/dev/null || echo 0)
	tail -n +"$((LLM_SEEN + 1))" "$LLM_LOG" >"$dir/llm-requests.jsonl" 2>/dev/null || true
	LLM_SEEN=$seen
	python3 - "$dir" "$scenario" "$rc" "$secs" "$OMP_VERSION" "$BUN_VERSION" <<'EOF'
import json, sys, pathlib
d, scenario, rc, secs, omp, bun = sys.argv[1:]
d = pathlib.Path(d)
paths = (d / "session-paths.txt").read_text().split() if (d / "session-paths.txt").exists() else []
(d / "session-paths.txt").unlink(missing_ok=True)
meta = {"scenario": scenario, "command": (d / "command.txt").read_text().strip(), "exitCode": int(rc),
        "seconds": float(secs), "omp": omp, "bun": bun, "sessionFiles": paths}
(d / "command.txt").unlink()
(d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
EOF
	log "$scenario: rc=$rc in ${secs}s"
}

LLM_SEEN=0
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }

run_scenario() { # $1 = scenario, rest = prompts
	local scenario=$1
	shift
	local home="$WORK/$scenario/home" t0
	prepare_home "$home"
	t0=$(now)
	start_omp "$scenario" "$home" "$@"
	wait_omp
	finish_scenario "$scenario" "$home" "$RC" "$(elapsed "$t0")"
}

run_killed() { # $1 = scenario (default killed)
	local scenario=${1:-killed} t0
	local home="$WORK/$scenario/home"
	prepare_home "$home"
	t0=$(now)
	start_omp "$scenario" "$home" "Wait half a minute, then list the files. [fake:killed]"
	# Wait until the bash tool runs `sleep 30`, then SIGKILL omp: it gets no chance to clean up.
	for _ in $(seq 600); do
		grep -q '"type":"tool_execution_start"' "$OUT/$scenario/stdout.jsonl" 2>/dev/null && break
		kill -0 "$OMP_PID" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	if [ -n "$BUN_PID" ] && kill -KILL "$BUN_PID" 2>/dev/null; then
		:
	else
		log "killed: omp was not running any more when it was to be killed"
	fi
	wait_omp
	finish_scenario "$scenario" "$home" "$RC" "$(elapsed "$t0")"
}

# The interactive TUI in tmux (a real terminal): wait for the footer item, type a prompt,
# wait for the answer and for the footer to count deliveries, then /exit.
TMUX_SOCKET="omp-e2e-$$"
tui() { tmux -L "$TMUX_SOCKET" -f /dev/null "$@"; }
wait_screen() { # $1 = extended regex, $2 = seconds; the screen is kept in $SCREEN
	local i
	for i in $(seq $(($2 * 10))); do
		SCREEN=$(tui capture-pane -p -t ext 2>/dev/null || true)
		if grep -Eq -- "$1" <<<"$SCREEN"; then return 0; fi
		sleep 0.1
	done
	log "ext-tui: timed out waiting for /$1/ on the screen:"
	printf '%s\n' "$SCREEN" | grep -v '^ *$' | tail -15 >&2
	return 1
}
run_tui() {
	local scenario=ext-tui home="$WORK/ext-tui/home" dir="$OUT/ext-tui" t0 rc=1
	prepare_home "$home"
	rm -rf "$dir"
	mkdir -p "$dir"
	t0=$(now)
	local prompt="List the files, then show notes.txt. [fake:tools]"
	install_extension "$home"
	printf '%s\n' "omp --model fakellm/fake-model (contrib/omp-events.ts in ~/.omp/agent/extensions, Langfuse keys exported; the TUI in tmux) $prompt" >"$dir/command.txt"
	{
		printf 'cd %q\n' "$home/project"
		printf 'env -i HOME=%q PI_CODING_AGENT_DIR=%q PATH=%q TMPDIR=%q LANG=C.UTF-8 TERM=xterm-256color' \
			"$home" "$home/.omp/agent" "$BUN_DIR:/usr/local/bin:/usr/bin:/bin" "$home/tmp"
		printf ' NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost'
		printf ' %q' $(engine_env "$home") "$BUN" "$OMP_CLI" --model fakellm/fake-model
		printf ' 2>%q\n' "$dir/stderr.txt"
		printf 'echo $? >%q\n' "$dir/exit-code"
	} >"$WORK/ext-tui/launch.sh"
	tui new-session -d -s ext -x 120 -y 40 "timeout -k 5 $RUN_TIMEOUT bash $WORK/ext-tui/launch.sh"
	if wait_screen 'langfuse ✓ 0' 90; then
		tui send-keys -t ext "$prompt" Enter
		if wait_screen 'There is no notes.txt' 90 && wait_screen 'langfuse ✓ [1-9]' 60; then
			printf '%s\n' "$SCREEN" >"$dir/screen.txt"
			tui send-keys -t ext /exit Enter
			for _ in $(seq 300); do
				[ -s "$dir/exit-code" ] && break
				sleep 0.1
			done
		fi
	fi
	[ -s "$dir/exit-code" ] && rc=$(cat "$dir/exit-code")
	rm -f "$dir/exit-code"
	tui kill-server 2>/dev/null || true
	finish_scenario "$scenario" "$home" "$rc" "$(elapsed "$t0")"
}

# After the extension scenarios: every omp-langfuse child they started has finished
# (bounded), so the mock has all there is. Written to each scenario's engine.txt.
wait_engines() {
	local verdict
	verdict=$(engines_verdict)
	for scenario in "$@"; do
		[ -d "$OUT/$scenario" ] && echo "$verdict" >"$OUT/$scenario/engine.txt"
	done
	log "omp-langfuse children: $verdict"
}

for scenario in "${SCENARIOS[@]}"; do
	case $scenario in
	tools) run_scenario tools "List the files, then show notes.txt. [fake:tools]" ;;
	two-prompts) run_scenario two-prompts "What files are here? [fake:p1]" "And what does main.py do? [fake:p2]" ;;
	retry) run_scenario retry "Say something once the provider is back. [fake:retry]" ;;
	killed) run_killed ;;
	compact)
		# A low compaction threshold and a tool output larger than the kept tail, so omp
		# really compacts (summary request to the fake LLM, session_compact, compaction entry).
		AGENT_CONFIG=$'compaction:\n  thresholdTokens: 15000\n  keepRecentTokens: 1000\n'
		run_scenario compact "Count to 3000, then list the files. [fake:compact]"
		AGENT_CONFIG=
		;;
	subagent)
		# A blocking task call (no background jobs), so the subagent runs to its end before
		# omp exits and the task result names it.
		AGENT_CONFIG=$'async:\n  enabled: false\n'
		run_scenario subagent "Delegate a greeting. [fake:subagent]"
		AGENT_CONFIG=
		;;
	edit)
		# The edit tool in replace mode: its arguments stream (tool_stream_update lines).
		# omp's preview is best effort (computed on its native worker pool, dropped when it
		# fails or settles late): CI once saw a run print none, so a run without one is
		# repeated, at most twice.
		AGENT_CONFIG=$'edit:\n  mode: replace\n'
		for attempt in 1 2 3; do
			rm -rf "$WORK/edit"
			run_scenario edit "Make main.py greet the world. [fake:edit]"
			grep -q '"type":"tool_stream_update"' "$OUT/edit/stdout.jsonl" && break
			if [ "$attempt" -lt 3 ]; then log "edit: omp printed no tool_stream_update (attempt $attempt); running it again"; fi
		done
		AGENT_CONFIG=
		;;
	combined)
		# The bridge on omp's stdout, beside omp's own json lines: one stream.
		EVENTS_TO=-
		run_scenario combined "List the files, then show notes.txt. [fake:tools]"
		EVENTS_TO=
		;;
	esac
done

EXT_SCENARIOS=()
if [ -n "${OMP_E2E_LANGFUSE_URL:-}" ] && [ -n "${OMP_E2E_BIN:-}" ]; then
	PROMPT="List the files, then show notes.txt. [fake:tools]"
	EXT=engine run_scenario ext-json "$PROMPT"
	EXT=none run_scenario ext-json-plain "$PROMPT"
	# A subagent: its session's copy of the extension shares the parent's child.
	AGENT_CONFIG=$'async:\n  enabled: false\n'
	EXT=engine run_scenario ext-subagent "Delegate a greeting. [fake:subagent]"
	AGENT_CONFIG=
	# omp killed in a running tool: the child sees its input end and closes what was open.
	EXT=engine run_killed ext-killed
	EXT=engine MODE=print run_scenario ext-print "$PROMPT"
	EXT=none MODE=print run_scenario ext-print-plain "$PROMPT"
	# Trouble: no binary where OMP_LANGFUSE_BIN points; keys the server rejects.
	EXT=engine MODE=print ENGINE_OVERRIDE=OMP_LANGFUSE_BIN=/nonexistent/omp-langfuse run_scenario ext-nobin "$PROMPT"
	EXT=engine MODE=print ENGINE_OVERRIDE=LANGFUSE_SECRET_KEY=sk-lf-rejected run_scenario ext-badkeys "$PROMPT"
	EXT_SCENARIOS+=(ext-json ext-json-plain ext-subagent ext-killed ext-print ext-print-plain ext-nobin ext-badkeys)
	if command -v tmux >/dev/null 2>&1; then
		AGENT_CONFIG=$'startup:\n  setupWizard: false\n  checkUpdate: false\n'
		run_tui
		AGENT_CONFIG=
		EXT_SCENARIOS+=(ext-tui)
	elif [ "${OMP_E2E_REQUIRE:-0}" = 1 ]; then
		log "tmux is not installed: the TUI scenario cannot run"
		exit 1
	else
		log "tmux is not installed: ext-tui skipped"
	fi
	wait_engines "${EXT_SCENARIOS[@]}"
fi

stop_fake_llm

# --------------------------------------------------------------------------------------
# Scrub machine-specific paths, then check the captures make sense.
# --------------------------------------------------------------------------------------
python3 "$HERE/scrub_and_check.py" "$OUT" --scenarios "${SCENARIOS[*]}" \
	--replace "$WORK/tools/home=$NEUTRAL_HOME" \
	--replace "$WORK/two-prompts/home=$NEUTRAL_HOME" \
	--replace "$WORK/retry/home=$NEUTRAL_HOME" \
	--replace "$WORK/killed/home=$NEUTRAL_HOME" \
	--replace "$WORK/compact/home=$NEUTRAL_HOME" \
	--replace "$WORK/subagent/home=$NEUTRAL_HOME" \
	--replace "$WORK/combined/home=$NEUTRAL_HOME" \
	--replace "$WORK/edit/home=$NEUTRAL_HOME" \
	--replace "$REPO=$NEUTRAL_REPO" \
	--replace "$CACHE=$NEUTRAL_CACHE" \
	--replace "$BUN_DIR=$NEUTRAL_CACHE/bin" \
	--replace "$WORK=/tmp/omp-e2e" \
	--replace "127.0.0.1:$PORT=127.0.0.1:8765"

if [ "$UPDATE_FIXTURES" = 1 ]; then
	dest="$REPO/fixtures/real"
	mkdir -p "$dest"
	for scenario in "${SCENARIOS[@]}"; do
		rm -rf "${dest:?}/$scenario"
		cp -r "$OUT/$scenario" "$dest/$scenario"
		rm -f "$dest/$scenario/stderr.txt" # empty when all is well; checked above
	done
	log "fixtures refreshed in $dest"
fi
echo "real-omp e2e: ok (${SCENARIOS[*]})"
