# The harness around a run of a real agent, shared by real-omp/run.sh and real-pi/run.sh
# (sourced, not run). The sourcing script sets first:
#   E2E_NAME     its name in messages ("real-omp")
#   E2E_REQUIRE  the value of its *_REQUIRE variable (1: a skip is a failure)
#   E2E_USAGE    the sed line range of its header comment, printed as its usage

usage() {
	sed -n "${E2E_USAGE}p" "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

skip() {
	if [ "${E2E_REQUIRE:-0}" = 1 ]; then
		echo "$E2E_NAME e2e: FAILED: $*" >&2
		exit 1
	fi
	echo "skipped: $*"
	exit 0
}

log() { echo "$E2E_NAME e2e: $*" >&2; }

# The one argument: OUTDIR, or --update-fixtures (sets UPDATE_FIXTURES to 1).
parse_args() {
	[ $# -eq 1 ] || usage
	UPDATE_FIXTURES=0
	if [ "$1" = --update-fixtures ]; then
		UPDATE_FIXTURES=1
	elif [ "${1#-}" != "$1" ]; then
		usage
	fi
}

need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
	done
}

# A work directory (WORK), removed at exit with the fake LLM stopped. $1 = name prefix
make_work() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	SERVER_PID=
	trap e2e_cleanup EXIT
}

e2e_cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}

# Install the pinned package.json / package-lock.json beside a script into a cache
# directory, once per lock hash and under a lock (runs side by side share it).
# $1 = the script's directory, $2 = cache, $3 = what (for messages), rest = npm command
install_pinned() {
	local here=$1 cache=$2 what=$3 hash
	shift 3
	hash=$(sha256sum "$here/package-lock.json" | cut -c1-16)
	mkdir -p "$cache"
	exec 9>"$cache.lock"
	flock -w 900 9 || skip "timed out waiting for another install into $cache"
	if [ ! -f "$cache/.installed-$hash" ]; then
		log "installing $what into $cache"
		rm -f "$cache"/.installed-*
		cp "$here/package.json" "$here/package-lock.json" "$cache/"
		if ! (cd "$cache" && timeout -k 10 900 "$@" >"$cache/npm-install.log" 2>&1); then
			tail -5 "$cache/npm-install.log" >&2 || true
			skip "npm could not install $what (see $cache/npm-install.log)"
		fi
		touch "$cache/.installed-$hash"
	fi
	flock -u 9
}

# The scripted fake LLM on loopback (real-omp/fake_llm.py). Sets SERVER_PID, PORT and
# LLM_LOG (every request it saw). $1 = fake_llm.py, $2 = its lifetime in seconds
start_fake_llm() {
	LLM_LOG="$WORK/llm-requests.jsonl"
	timeout -k 5 $(($2 + 300)) python3 "$1" --port-file "$WORK/port" --log "$LLM_LOG" --lifetime "$2" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		[ -s "$WORK/port" ] && break
		sleep 0.1
	done
	[ -s "$WORK/port" ] || {
		log "the fake LLM did not start"
		exit 1
	}
	PORT=$(cat "$WORK/port")
}

stop_fake_llm() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# After the extension scenarios: wait (at most 60 s) until every omp-langfuse child they
# started has finished, so the mock has all there is. A child is told `--status-file
# /dev/fd/3`, its descriptor 3 the status file the extension made in a scenario's TMPDIR
# under $WORK (removed as omp exited). Prints "finished", "still running: <pids>", or
# "left behind: <files>" when a status file outlived its omp.
engine_children() {
	local pid
	for pid in $(pgrep -f -- "--status-file /dev/fd/3" || true); do
		case $(readlink "/proc/$pid/fd/3" 2>/dev/null) in "$WORK"/*) echo "$pid" ;; esac
	done
}
engines_verdict() {
	local left=
	for _ in $(seq 600); do
		left=$(engine_children)
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -n "$left" ]; then echo "still running:" $left; return; fi
	left=$(find "$WORK" -name 'omp-langfuse-*.status.jsonl' 2>/dev/null)
	if [ -n "$left" ]; then echo "left behind:" $left; else echo finished; fi
}
