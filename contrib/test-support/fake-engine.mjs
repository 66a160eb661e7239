#!/usr/bin/env node
// A stand-in for the omp-langfuse binary in the extension's tests (OMP_LANGFUSE_BIN): it
// records its arguments and stdin, and writes status lines as FAKE_ENGINE says:
//   ok      a status line per chunk read (delivered = lines so far), `done` at the end of input
//   reject  `failed` with "keys rejected (HTTP 401)"
//   crash   says why on stderr and exits 3 after the first chunk
// With FAKE_ENGINE_HOLD=PATH it waits, after its input ended, until PATH exists; with
// FAKE_ENGINE_BEGIN=PATH, before it opens its status file (a child slow to start).
import fs from "node:fs";

const args = process.argv.slice(2);
const statusPath = args[args.indexOf("--status-file") + 1];
const record = process.env.FAKE_ENGINE_RECORD;
const mode = process.env.FAKE_ENGINE ?? "ok";
const begin = process.env.FAKE_ENGINE_BEGIN;
while (begin && !fs.existsSync(begin)) await new Promise(r => setTimeout(r, 10));
// Kept open, as omp-langfuse does: lines written after omp removed the file go nowhere.
// Opened before the arguments are recorded, so a test that sees `.args` knows it exists.
const statusFd = fs.openSync(statusPath, "a");
fs.writeFileSync(`${record}.pid`, String(process.pid));
fs.writeFileSync(`${record}.args`, JSON.stringify(args));
const status = o => fs.writeSync(statusFd, `${JSON.stringify({ delivered: 0, rejected: 0, spooled: 0, ...o })}\n`);
status({ state: "started" });
// Ignored when omp, which reads it, is gone (as omp-langfuse ignores it).
process.stderr.on("error", () => {});
process.stderr.write("omp-langfuse: transport otlp (fake)\n");

let lines = 0;
process.stdin.on("data", chunk => {
	fs.appendFileSync(record, chunk);
	lines += String(chunk).split("\n").length - 1;
	if (mode === "crash") {
		process.stderr.write("omp-langfuse: something broke\n");
		process.exit(3);
	}
	if (mode === "reject") status({ state: "failed", cause: "keys rejected (HTTP 401)", spooled: lines });
	else status({ state: "ok", delivered: lines });
});
process.stdin.on("end", () => {
	const finish = () => {
		status({ state: "done", delivered: lines });
		// Renamed into place, so a test that sees the file also sees its content.
		fs.writeFileSync(`${record}.done.tmp`, String(lines));
		fs.renameSync(`${record}.done.tmp`, `${record}.done`);
	};
	const hold = process.env.FAKE_ENGINE_HOLD;
	if (!hold) return finish();
	const timer = setInterval(() => {
		if (fs.existsSync(hold)) {
			clearInterval(timer);
			finish();
		}
	}, 20);
});
