#!/usr/bin/env python3
"""Scrub machine-specific paths from the captures of run.sh, then check that each scenario
produced what it should. Prints a table of line counts; exits 1 when a check fails."""

import argparse
import json
import pathlib
import re
import sys

SCENARIOS = ["tools", "two-prompts", "retry", "killed", "compact", "subagent", "combined", "edit"]

# omp puts a <workstation> block about the machine into its system prompt (seen in the
# --events lines before_agent_start and before_provider_request). Neutralise the parts that
# describe this machine. The text sits inside JSON strings, so lines end in a literal \n.
WORKSTATION = [
    (re.compile(r"(\\n- OS: )[^\\\"]*"), r"\1linux 6.1.0"),
    (re.compile(r"(\\n- Kernel: )[^\\\"]*"), r"\1#1 SMP"),
    (re.compile(r"(\\n- CPU: )[^\\\"]*"), r"\1x86-64"),
]


def read_jsonl(path):
    if not path.exists():
        return None
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise AssertionError(f"{path.name}:{n} is not JSON ({e}): {line[:120]}")
    return out


def types(lines):
    return [l.get("type") for l in lines]


def is_session_exit(entry):
    # omp 18.2.3 writes it as a custom entry: {"type":"custom","customType":"session_exit",...}
    return entry.get("type") == "session_exit" or entry.get("customType") == "session_exit"


def check(d, scenario):
    problems = []

    def expect(cond, what):
        if not cond:
            problems.append(what)

    meta = json.loads((d / "meta.json").read_text())
    rc = meta["exitCode"]
    stdout = read_jsonl(d / "stdout.jsonl") or []
    events = read_jsonl(d / "events.jsonl") or []
    if scenario == "combined":
        # --events=-: the bridge's lines (numeric seq) are on stdout, among omp's own.
        expect(not events, "combined: the events file is not empty")
        events = [l for l in stdout if isinstance(l.get("seq"), int)]
        stdout = [l for l in stdout if not isinstance(l.get("seq"), int)]
    session = read_jsonl(d / "session.jsonl")
    stderr = (d / "stderr.txt").read_text() if (d / "stderr.txt").exists() else ""

    expect(stdout and stdout[0].get("type") == "session", "stdout line 1 is not the session header")
    sid = stdout[0].get("id") if stdout else None
    expect(session is not None, "no session file")
    # sessions/<dir>/<file>.jsonl; subagent sessions sit one level deeper.
    top_level = [p for p in meta["sessionFiles"] if p.count("/") == 2]
    expect(len(top_level) == 1, f"expected one top-level session file, got {meta['sessionFiles']}")
    expect(events, "no --events lines")
    expect(all(isinstance(e.get("ts"), (int, float)) for e in events), "an events line without a numeric ts")
    # Subagent sessions load the bridge too and write to the same destination, each with
    # its own session id and seq counter.
    sub_ids = set()
    for p in meta["sessionFiles"]:
        if p.count("/") == 3:
            for e in read_jsonl(d / p) or []:
                if e.get("type") == "session":
                    sub_ids.add(e.get("id"))
    expect(all(e.get("sessionId") in {sid} | sub_ids for e in events),
           "an events line whose sessionId is neither the session's nor a subagent's")
    for s in {e.get("sessionId") for e in events}:
        seqs = [e.get("seq") for e in events if e.get("sessionId") == s]
        expect(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"events seq of {s} is not increasing")
    expect("events_dropped" not in types(events), "the bridge dropped events")
    expect("omp-events:" not in stderr and "Extension error" not in stderr, f"bridge trouble on stderr: {stderr[:300]}")
    ev = types(events)

    tool_ends = [l for l in stdout if l.get("type") == "tool_execution_end"]
    if scenario == "tools":
        expect(rc == 0, f"rc {rc}")
        expect([t.get("isError") for t in tool_ends] == [False, True], "expected ls ok, then cat failing")
        expect(ev and ev[-1] == "session_shutdown", "events do not end with session_shutdown")
        expect(session and is_session_exit(session[-1]), "session does not end with session_exit")
    elif scenario == "two-prompts":
        expect(rc == 0, f"rc {rc}")
        expect(ev.count("before_agent_start") == 2, "expected two prompts (before_agent_start)")
        expect(ev and ev[-1] == "session_shutdown", "events do not end with session_shutdown")
    elif scenario == "retry":
        expect(rc == 0, f"rc {rc}")
        expect("auto_retry_start" in ev, "no auto_retry_start")
        ends = [e for e in events if e.get("type") == "auto_retry_end"]
        expect(ends and ends[-1].get("success") is True, "no successful auto_retry_end")
    elif scenario == "killed":
        expect(rc != 0, "omp was supposed to be killed")
        expect("session_shutdown" not in ev, "a killed omp wrote session_shutdown")
        expect("tool_execution_start" in ev, "the bash tool never started")
        expect(session and not any(is_session_exit(e) for e in session), "a killed session has session_exit")
    elif scenario == "compact":
        expect(rc == 0, f"rc {rc}")
        for t in ("auto_compaction_start", "session_before_compact", "session_compact", "auto_compaction_end"):
            expect(t in ev, f"no {t} in the events")
        expect(all("signal" not in e for e in events if e.get("type") == "session_before_compact"),
               "session_before_compact kept its AbortSignal")
        expect(any(l.get("type") == "auto_compaction_end" and l.get("result") for l in stdout),
               "no auto_compaction_end with a result on stdout")
        expect(session and "compaction" in types(session), "no compaction entry in the session")
    elif scenario == "subagent":
        expect(rc == 0, f"rc {rc}")
        subs = [p for p in meta["sessionFiles"] if p.count("/") == 3]
        expect(len(subs) == 1, f"expected one subagent session file, got {meta['sessionFiles']}")
        if subs:
            agent_id = pathlib.Path(subs[0]).stem
            sub = read_jsonl(d / subs[0]) or []
            expect("session_init" in types(sub), "the subagent session has no session_init")
            expect(any(e.get("parentSession") for e in sub if e.get("type") == "session"),
                   "the subagent's header has no parentSession")
            ids = [r.get("id") for e in session or [] if e.get("type") == "message"
                   and e["message"].get("toolName") == "task"
                   for r in (e["message"].get("details") or {}).get("results", [])]
            expect(agent_id in ids, f"the task result does not name {agent_id}: {ids}")
            expect(sub_ids and all(e.get("sessionId") in sub_ids for e in events
                                   if e.get("sessionId") != sid) and
                   any(e.get("sessionId") in sub_ids for e in events),
                   "the subagent's bridge lines are not in the events file")
            expect(all("sessionId" not in l for l in stdout), "bridge lines on omp's stdout")
    elif scenario == "edit":
        expect(rc == 0, f"rc {rc}")
        expect("tool_stream_update" in types(stdout), "no tool_stream_update on stdout")
        expect(any(l.get("type") == "tool_execution_end" and l.get("toolName") == "edit"
                   and not l.get("isError") for l in stdout), "the edit did not succeed")
    elif scenario == "combined":
        expect(rc == 0, f"rc {rc}")
        expect(ev and ev[0] == "session_start", "the bridge's session_start is not first")
        expect(len(tool_ends) == 2, "expected two tool runs in omp's own lines")
    counts = {
        "rc": rc,
        "stdout": len(stdout),
        "events": len(events),
        "session": len(session or []),
        "llm": len(read_jsonl(d / "llm-requests.jsonl") or []),
    }
    return counts, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--replace", action="append", default=[], metavar="OLD=NEW")
    ap.add_argument("--scenarios", default=" ".join(SCENARIOS), help="the scenarios run")
    args = ap.parse_args()
    out = pathlib.Path(args.outdir)
    pairs = [r.rsplit("=", 1) for r in args.replace]
    # Longest first, so a path is replaced before any prefix of it.
    pairs.sort(key=lambda p: len(p[0]), reverse=True)

    for f in sorted(out.glob("*/**/*")):
        if f.is_file():
            text = f.read_text(errors="surrogateescape")
            new = text
            for old, repl in pairs:
                new = new.replace(old, repl)
            for pattern, repl in WORKSTATION:
                new = pattern.sub(repl, new)
            if new != text:
                f.write_text(new, errors="surrogateescape")

    failed = False
    print(f"{'scenario':<12} {'rc':>4} {'stdout':>7} {'events':>7} {'session':>8} {'llm req':>8}", file=sys.stderr)
    for scenario in args.scenarios.split():
        d = out / scenario
        try:
            counts, problems = check(d, scenario)
        except (AssertionError, FileNotFoundError, KeyError) as e:
            counts, problems = None, [str(e)]
        if counts:
            print(f"{scenario:<12} {counts['rc']:>4} {counts['stdout']:>7} {counts['events']:>7} "
                  f"{counts['session']:>8} {counts['llm']:>8}", file=sys.stderr)
        for p in problems:
            failed = True
            print(f"  {scenario}: FAIL: {p}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
