#!/usr/bin/env python3
"""A scripted, OpenAI-compatible chat-completions server for driving the real omp offline.

Standard library only. Listens on 127.0.0.1 (an ephemeral port, written to --port-file),
streams Server-Sent Events like the OpenAI API does, and sends usage in a trailing chunk
(`stream_options.include_usage`), with `prompt_tokens_details.cached_tokens`.

What it answers is decided by the request itself, so omp's own extra requests (hidden
transport retries, title generation, anything new) cannot put it out of step:
  scenario = the `[fake:NAME]` marker in the last user message,
  step     = how many assistant messages follow that user message.
A request without a marker gets a short plain answer; one without tools (an omp side call,
such as a compaction summary or a title) gets a summary-like answer.

Every request is logged as one JSON line (no bodies: omp's system prompt alone is ~70 KB).
The server exits by itself after --lifetime seconds.
"""

import argparse
import itertools
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-model"

# Tools whose streamed arguments omp previews (edit: a `tool_stream_update` line per settled
# preview). omp computes the preview on its native worker pool and drops one that settles after
# the call has run, so each argument piece is followed by a pause long enough for a busy machine
# (0.5 s once proved too short on CI), and the arguments come in three pieces, so two previews
# of partial arguments can settle before the complete one.
PREVIEWED = {"edit"}
PREVIEW_PAUSE = 2.0
PREVIEW_PIECES = 3

# scenario -> list of steps; a step is (text, [(tool name, arguments)]).
# Tool arguments carry omp's intent field "i", as real models fill it in.
SCRIPTS = {
    "tools": [
        ("I'll start by listing the files.", [("bash", {"i": "list files", "command": "ls"})]),
        ("Now the notes file.", [("bash", {"i": "show notes", "command": "cat notes.txt"})]),
        ("The project has README.md and main.py. There is no notes.txt, so cat failed.", []),
    ],
    "p1": [
        ("Listing first.", [("bash", {"i": "list files", "command": "ls"})]),
        ("There are two files: README.md and main.py.", []),
    ],
    "p2": [
        ("main.py prints a greeting; nothing else to do.", []),
    ],
    "killed": [
        ("This takes a while.", [("bash", {"i": "wait then list", "command": "sleep 30; ls -la"})]),
        ("Done waiting.", []),
    ],
    "retry": [
        ("Answered after the provider recovered.", []),
    ],
    # pi: one 529 (pi's SDK retries are turned off in its settings), so pi's own
    # auto-retry shows.
    "retry1": [
        ("Answered after the provider recovered.", []),
    ],
    # The parent asks the task tool for a subagent; the subagent (its task carries the
    # `sub` marker) answers and yields its result.
    "subagent": [
        ("I'll delegate that.", [("task", {"i": "delegate", "agent": "task", "task": "Say hello. [fake:sub]"})]),
        ("The subagent said hello.", []),
    ],
    "sub": [
        ("Hello from the subagent.", [("yield", {"data": {"greeting": "hello"}})]),
        ("Done.", []),
    ],
    # omp's edit tool (replace mode, set in the scenario's config): its arguments stream, so
    # omp prints `tool_stream_update` lines in --mode json.
    "edit": [
        ("I'll change the greeting.", [("edit", {"i": "greet the world", "path": "main.py",
                                                 "old_string": "hello", "new_string": "hello, world"})]),
        ("main.py now prints hello, world.", []),
    ],
    "compact": [
        ("Counting first.", [("bash", {"i": "count", "command": "seq 1 3000"})]),
        ("Listing next.", [("bash", {"i": "list files", "command": "ls"})]),
        ("Two files: README.md and main.py.", []),
    ],
}

# Scenarios whose first N requests fail with HTTP 529 (Anthropic-style "overloaded"). omp's
# OpenAI transport retries 5xx itself (6 attempts, twice), so it takes 12 failures before
# omp's own auto-retry (auto_retry_start/end) becomes visible.
FAILURES = {"retry": 12, "retry1": 1}

MARKER = re.compile(r"\[fake:([a-z0-9-]+)\]")


def text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def locate(messages):
    """(scenario, step) for a request's message list."""
    last_user = None
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            last_user = i
    if last_user is None:
        return None, 0
    found = MARKER.search(text_of(messages[last_user].get("content")))
    step = sum(1 for m in messages[last_user + 1:] if m.get("role") == "assistant")
    return (found.group(1) if found else None), step


def words(text):
    """Split text into a few stream pieces, keeping the spaces."""
    parts = re.findall(r"\S+\s*", text)
    size = max(1, len(parts) // 3)
    return ["".join(parts[i:i + size]) for i in range(0, len(parts), size)]


class State:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.failed = {}
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def record(self, entry):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(entry, sort_keys=True) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None  # set in main

    def log_message(self, fmt, *args):  # keep stderr quiet; the JSON log has it all
        pass

    def _json(self, status, obj, headers=None, reason=None):
        body = json.dumps(obj).encode()
        self.send_response(status, reason)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        n = next(self.state.counter)
        self.state.record({"n": n, "method": "GET", "path": self.path})
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = next(self.state.counter)
        length = int(self.headers.get("content-length") or 0)
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            req = {}
        messages = req.get("messages") or []
        scenario, step = locate(messages)
        entry = {
            "n": n,
            "method": "POST",
            "path": self.path,
            "scenario": scenario,
            "step": step,
            "messages": len(messages),
            "tools": sorted(t.get("function", {}).get("name", "?") for t in req.get("tools") or []),
            "stream": bool(req.get("stream")),
        }
        if not self.path.rstrip("/").endswith("/chat/completions"):
            entry["status"] = 404
            self.state.record(entry)
            self._json(404, {"error": {"message": "not found"}})
            return

        with self.state.lock:
            failed = self.state.failed.get(scenario, 0)
            fail = failed < FAILURES.get(scenario, 0)
            if fail:
                self.state.failed[scenario] = failed + 1
        if fail:
            entry["status"] = 529
            self.state.record(entry)
            self._json(
                529,
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                {"retry-after-ms": "200"},
                reason="Overloaded",  # http.server knows no phrase for 529
            )
            return

        steps = SCRIPTS.get(scenario)
        if not req.get("tools"):
            # omp's own side calls (compaction summaries, titles) come without tools.
            text, calls = "Summary: the user asked about the project files; ls showed README.md and main.py.", []
        elif steps is None:
            text, calls = "OK.", []
        else:
            text, calls = steps[min(step, len(steps) - 1)]
        entry["status"] = 200
        self.state.record(entry)
        self._stream(n, req, messages, step, text, calls)

    def _stream(self, n, req, messages, step, text, calls):
        cid = f"chatcmpl-fake{n:04d}"
        created = int(time.time())

        def chunk(delta=None, finish=None, usage=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL}
            obj["choices"] = [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
            if usage:
                obj["usage"] = usage
            return "data: " + json.dumps(obj) + "\n\n"

        # Deterministic token counts that look plausible: the prompt grows with the
        # conversation, and later calls in a prompt hit the (pretend) prompt cache.
        prompt_chars = sum(len(text_of(m.get("content"))) for m in messages)
        prompt_tokens = 9000 + prompt_chars // 4
        cached = 8192 if step > 0 else 0
        completion_tokens = 5 + len(text) // 4 + 20 * len(calls)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

        events = [chunk({"role": "assistant", "content": ""})]
        pauses = {}  # event index -> seconds to wait after it
        for piece in words(text):
            events.append(chunk({"content": piece}))
        for index, (name, args) in enumerate(calls):
            call_id = f"call_fake{n:04d}_{index}"
            raw = json.dumps(args)
            cuts = PREVIEW_PIECES if name in PREVIEWED else 2
            bounds = [len(raw) * k // cuts for k in range(cuts + 1)]
            events.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            for piece in (raw[a:b] for a, b in zip(bounds, bounds[1:])):
                events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
                if name in PREVIEWED:
                    pauses[len(events) - 1] = PREVIEW_PAUSE
        events.append(chunk(finish="tool_calls" if calls else "stop"))
        if req.get("stream_options", {}).get("include_usage", True):
            events.append(chunk(usage=usage))
        events.append("data: [DONE]\n\n")

        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("x-request-id", f"req_fake{n:04d}")
        self.send_header("connection", "close")
        self.end_headers()
        try:
            for k, e in enumerate(events):
                self.wfile.write(e.encode())
                self.wfile.flush()
                # a little streaming, so deltas arrive as separate events
                time.sleep(pauses.get(k, 0.01))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True, help="write the chosen port here once listening")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--lifetime", type=float, default=900, help="exit after this many seconds")
    args = ap.parse_args()

    Handler.state = State(args.log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    stopper = threading.Timer(args.lifetime, server.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
