// The extension's engine mode: with the two Langfuse keys and no --events, it starts one
// omp-langfuse child per process, streams the lines into its stdin and shows the child's
// status file in omp's footer. In-process tests use a fake spawn; the subprocess tests run
// the real child_process.spawn against test-support/fake-engine.mjs (or a missing binary).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync, fstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, test } from "node:test";
import { compiledBridgePath, fakeCtx, fakePi, loadBridge, tempDir } from "../test-support/fake-omp.mjs";

const bridge = await loadBridge();
const FAKE_ENGINE = fileURLToPath(new URL("../test-support/fake-engine.mjs", import.meta.url));
const KEYS = { LANGFUSE_PUBLIC_KEY: "pk-lf-test", LANGFUSE_SECRET_KEY: "sk-lf-test" };

afterEach(() => bridge.resetEngine());

/** What a fake child writes to the status file it was handed (descriptor 3). */
const childWrites = (fake, text) => writeSync(fake.calls[0].options.stdio[3], text);

/** A fake spawn: records calls; its child's stdin keeps what is written (or never answers). */
function fakeSpawn({ fail, hang = false } = {}) {
	const calls = [];
	const spawnFn = (command, args, options) => {
		const child = new EventEmitter();
		child.written = [];
		child.stderr = new EventEmitter();
		child.stdin = Object.assign(new EventEmitter(), {
			write(chunk, cb) {
				if (hang) return false;
				child.written.push(chunk);
				queueMicrotask(() => cb());
				return true;
			},
		});
		calls.push({ command, args, options, child });
		if (fail) queueMicrotask(() => child.emit("error", fail));
		return child;
	};
	return { calls, spawnFn, lines: () => calls[0].child.written.join("").split("\n").filter(Boolean).map(l => JSON.parse(l)) };
}

function start({ env = KEYS, spawnFn, flags = {}, argv = ["--mode", "json", "p1"], ...rest } = {}) {
	const pi = fakePi(flags);
	const warnings = [];
	const statusPath = path.join(tempDir(), "status.jsonl");
	const handle = bridge.createEventsBridge(pi, {
		env,
		argv,
		exitHook: false,
		warn: m => warnings.push(m),
		engine: { spawn: spawnFn, statusPath, pollMs: 60_000 },
		...rest,
	});
	return { pi, warnings, statusPath, ...handle };
}

/** A TUI context that records footer items and notifications. */
function tuiCtx() {
	const footer = [];
	const notes = [];
	return {
		...fakeCtx(),
		mode: "tui",
		hasUI: true,
		ui: { setStatus: (key, text) => footer.push([key, text]), notify: (m, level) => notes.push([m, level]) },
		footer,
		notes,
	};
}

const tick = () => new Promise(resolve => setTimeout(resolve, 5));

describe("starting the engine", () => {
	test("with both keys and no --events: one child per process, for every session", async () => {
		const fake = fakeSpawn();
		const a = start({ spawnFn: fake.spawnFn });
		// A subagent session loads the extension again in the same process.
		const b = start({ spawnFn: fake.spawnFn });
		a.pi.emit({ type: "session_start" }, fakeCtx("parent"));
		b.pi.emit({ type: "session_start" }, fakeCtx("child"));
		a.pi.emit({ type: "turn_start", turnIndex: 0 }, fakeCtx("parent"));
		await Promise.all(b.pi.emit({ type: "session_shutdown" }, fakeCtx("child")));
		await Promise.all(a.pi.emit({ type: "session_shutdown" }, fakeCtx("parent")));
		assert.equal(fake.calls.length, 1);
		const { command, args, options } = fake.calls[0];
		assert.equal(command, "omp-langfuse");
		// The status file is created, handed over open as descriptor 3 and its name removed.
		assert.deepEqual(args, ["--status-file", "/dev/fd/3", "--ui-indicator=false"]);
		assert.equal(fstatSync(options.stdio[3]).mode & 0o777, 0o600, "created private");
		assert.equal(existsSync(a.statusPath), false, "no name left in the temp directory");
		assert.equal(options.detached, true, "its own session: Ctrl+C in omp does not reach it");
		assert.equal(options.stdio[1], "ignore", "the child never writes to omp's stdout");
		assert.equal(options.env.LANGFUSE_SECRET_KEY, "sk-lf-test", "the child reads its settings from the environment");
		assert.deepEqual(
			fake.lines().map(l => `${l.sessionId}:${l.type}`),
			["parent:session_start", "child:session_start", "parent:turn_start", "child:session_shutdown", "parent:session_shutdown"],
		);
	});

	test("OMP_LANGFUSE_BIN names the binary", () => {
		const fake = fakeSpawn();
		const { pi } = start({ spawnFn: fake.spawnFn, env: { ...KEYS, OMP_LANGFUSE_BIN: "/opt/bin/omp-langfuse" } });
		pi.emit({ type: "session_start" }, fakeCtx());
		assert.equal(fake.calls[0].command, "/opt/bin/omp-langfuse");
	});

	for (const [label, env, flags, argv] of [
		["without keys it stays silent", {}, {}, ["p1"]],
		["with one key only it stays silent", { LANGFUSE_PUBLIC_KEY: "pk-lf-test", LANGFUSE_SECRET_KEY: " " }, {}, ["p1"]],
		["--events keeps writing its file", KEYS, { events: "FILE" }, ["--events=FILE"]],
	]) {
		test(label, async () => {
			const fake = fakeSpawn();
			const file = path.join(tempDir(), "events.jsonl");
			const s = start({ spawnFn: fake.spawnFn, env, flags: flags.events ? { events: file } : {}, argv });
			s.pi.emit({ type: "session_start" }, fakeCtx());
			await Promise.all(s.pi.emit({ type: "session_shutdown" }, fakeCtx()));
			assert.equal(fake.calls.length, 0);
			assert.deepEqual(s.warnings, []);
			assert.equal(s.engine(), undefined);
			if (flags.events) assert.equal(readFileSync(file, "utf8").trim().split("\n").length, 2);
		});
	}
});

describe("trouble is told once and omp goes on", () => {
	test("a missing binary: one plain warning on stderr outside the TUI, handlers unaffected", async () => {
		const fake = fakeSpawn({ fail: Object.assign(new Error("spawn omp-langfuse ENOENT"), { code: "ENOENT" }) });
		const s = start({ spawnFn: fake.spawnFn });
		assert.deepEqual(s.pi.emit({ type: "session_start" }, fakeCtx()), [undefined]);
		await tick();
		for (let i = 0; i < 5; i++) assert.deepEqual(s.pi.emit({ type: "turn_start", turnIndex: i }, fakeCtx()), [undefined]);
		await Promise.all(s.pi.emit({ type: "session_shutdown" }, fakeCtx()));
		assert.equal(s.warnings.length, 1, s.warnings.join("\n"));
		assert.equal(s.warnings[0], "omp-langfuse: omp-langfuse not found on PATH (install omp-langfuse, or set OMP_LANGFUSE_BIN): sessions are not traced");
		assert.ok(s.queue().dropped >= 5, "what could not go out is counted");
	});

	test("in the TUI: a notification and the footer say so", async () => {
		const fake = fakeSpawn({ fail: Object.assign(new Error("spawn x ENOENT"), { code: "ENOENT" }) });
		const s = start({ spawnFn: fake.spawnFn });
		const ctx = tuiCtx();
		s.pi.emit({ type: "session_start" }, ctx);
		await tick();
		s.pi.emit({ type: "turn_start" }, ctx);
		assert.deepEqual(s.warnings, []);
		assert.equal(ctx.notes.length, 1);
		assert.equal(ctx.notes[0][1], "warning");
		assert.deepEqual(ctx.footer.at(-1), ["langfuse", "langfuse ✗ not running"]);
	});

	test("a child that stops: its last words and its status, once", async () => {
		const fake = fakeSpawn();
		const s = start({ spawnFn: fake.spawnFn });
		s.pi.emit({ type: "session_start" }, fakeCtx());
		const child = fake.calls[0].child;
		child.stderr.emit("data", "omp-langfuse: warning: x\nomp-langfuse: the delivery worker crashed\n");
		child.emit("exit", 3, null);
		child.emit("exit", 3, null);
		s.pi.emit({ type: "turn_start" }, fakeCtx());
		assert.deepEqual(s.warnings, ["omp-langfuse: stopped (exit status 3): the delivery worker crashed; the rest of this omp run is not traced"]);
		assert.equal(s.engine().down, "stopped (3)");
	});

	test("rejected keys: told once from the status file, and the footer shows it", () => {
		const fake = fakeSpawn();
		const s = start({ spawnFn: fake.spawnFn });
		const ctx = tuiCtx();
		s.pi.emit({ type: "session_start" }, ctx);
		const failed = { state: "failed", cause: "keys rejected (HTTP 401)", delivered: 0, rejected: 0, spooled: 3 };
		childWrites(fake, `${JSON.stringify(failed)}\n`);
		s.engine().poll();
		childWrites(fake, `${JSON.stringify({ ...failed, spooled: 9 })}\n`);
		s.engine().poll();
		assert.equal(ctx.notes.length, 1);
		assert.match(ctx.notes[0][0], /keys rejected \(HTTP 401\); check LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY/);
		assert.deepEqual(ctx.footer.at(-1), ["langfuse", "langfuse ✗ keys rejected (HTTP 401)"]);
	});
});

describe("the footer item", () => {
	test("follows the status file: on at once, delivered, retrying, spooled", () => {
		const fake = fakeSpawn();
		const s = start({ spawnFn: fake.spawnFn });
		const ctx = tuiCtx();
		s.pi.emit({ type: "session_start" }, ctx);
		assert.deepEqual(ctx.footer, [["langfuse", "langfuse ✓ 0"]]);
		const write = (...lines) => childWrites(fake, lines.map(l => `${JSON.stringify(l)}\n`).join(""));
		write({ state: "started", delivered: 0 }, { state: "ok", delivered: 42 });
		s.engine().poll();
		write({ state: "retrying", delivered: 42, cause: "HTTP 503" });
		s.engine().poll();
		// A line cut in two by the poll: only whole lines count.
		const spooled = JSON.stringify({ state: "spooled", delivered: 42, spooled: 12, cause: "timeout" });
		childWrites(fake, spooled.slice(0, 10));
		s.engine().poll();
		childWrites(fake, `${spooled.slice(10)}\n`);
		s.engine().poll();
		assert.deepEqual(
			ctx.footer.map(f => f[1]),
			["langfuse ✓ 0", "langfuse ✓ 42", "langfuse ⟳ retrying", "langfuse ⏸ spooled 12"],
		);
		assert.deepEqual(ctx.notes, [], "no notice while delivery merely waits");
	});

	test("LANGFUSE_UI_INDICATOR=false: no footer item", () => {
		const fake = fakeSpawn();
		const s = start({ spawnFn: fake.spawnFn, env: { ...KEYS, LANGFUSE_UI_INDICATOR: "false" } });
		const ctx = tuiCtx();
		s.pi.emit({ type: "session_start" }, ctx);
		childWrites(fake, `${JSON.stringify({ state: "ok", delivered: 1 })}\n`);
		s.engine().poll();
		assert.deepEqual(ctx.footer, []);
	});

	test("footer texts", () => {
		assert.equal(bridge.footerText(undefined, undefined), "langfuse ✓ 0");
		assert.equal(bridge.footerText({ state: "done", delivered: 7 }, undefined), "langfuse ✓ 7");
		assert.equal(bridge.footerText({ state: "ok", delivered: 7 }, "stopped (2)"), "langfuse ✗ stopped (2)");
	});
});

describe("a child that does not keep up", () => {
	test("the queue stays bounded, dropping deltas first, and says how many at shutdown", async () => {
		const fake = fakeSpawn({ hang: true });
		const s = start({ spawnFn: fake.spawnFn, maxQueuedLines: 10, shutdownFlushMs: 20 });
		const ctx = fakeCtx();
		s.pi.emit({ type: "session_start" }, ctx);
		for (let i = 0; i < 50; i++) {
			const r = s.pi.emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: String(i) } }, ctx);
			assert.deepEqual(r, [undefined]);
		}
		s.pi.emit({ type: "turn_end", turnIndex: 0 }, ctx);
		await Promise.all(s.pi.emit({ type: "session_shutdown" }, ctx));
		const q = s.queue();
		assert.ok(q.dropped >= 40, `dropped ${q.dropped}`);
		assert.ok(q.queued <= 10);
	});
});

describe("with real processes", () => {
	/** Run the extension in a node process of its own (as omp would), with `env`. */
	function runOmpLike(env, after = "process.exit(0);") {
		const script = `
			import { pathToFileURL } from "node:url";
			const bridge = await import(pathToFileURL(${JSON.stringify(compiledBridgePath())}).href);
			const handlers = new Map();
			const pi = { registerFlag() {}, getFlag: () => undefined, on: (name, h) => handlers.set(name, h) };
			const h = bridge.createEventsBridge(pi, { argv: ["--mode", "json", "p1"] });
			const ctx = { sessionManager: { getSessionId: () => "s1" }, getContextUsage: () => undefined };
			handlers.get("session_start")({ type: "session_start" }, ctx);
			for (let i = 0; i < 100; i++) handlers.get("message_update")({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: String(i) } }, ctx);
			handlers.get("turn_end")({ type: "turn_end", turnIndex: 0 }, ctx);
			await new Promise(r => setTimeout(r, 100));
			await handlers.get("session_shutdown")({ type: "session_shutdown" }, ctx);
			${after}
		`;
		const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LANGFUSE_") && !k.startsWith("OMP_LANGFUSE_")));
		return spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000, env: { ...clean, ...env } });
	}

	async function waitFor(file, ms = 20_000) {
		const deadline = Date.now() + ms;
		while (!existsSync(file) && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
		return existsSync(file);
	}

	test("every line reaches the child, stdout stays empty, and omp's exit does not wait for it", async () => {
		const dir = tempDir();
		const record = path.join(dir, "stdin.jsonl");
		const hold = path.join(dir, "release");
		// omp exits once the child has started (opened its status file): a child still
		// starting when omp exits creates the file after omp removed it, and a loaded
		// machine can take longer than the run to start node.
		const started = `const args = ${JSON.stringify(`${record}.args`)};
			while (!(await import("node:fs")).existsSync(args)) await new Promise(r => setTimeout(r, 10));
			process.exit(0);`;
		const r = runOmpLike({ ...KEYS, OMP_LANGFUSE_BIN: FAKE_ENGINE, FAKE_ENGINE_RECORD: record, FAKE_ENGINE_HOLD: hold }, started);
		// The child is still holding (it waits for `hold`), yet the parent is gone.
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
		assert.equal(r.stderr, "");
		assert.equal(existsSync(`${record}.done`), false);
		writeFileSync(hold, "");
		assert.ok(await waitFor(`${record}.done`), "the child finishes on its own once its input ended");
		const lines = readFileSync(record, "utf8").trim().split("\n").map(l => JSON.parse(l));
		assert.deepEqual(lines.map(l => l.type).filter(t => t !== "message_update"), ["session_start", "turn_end", "session_shutdown"]);
		assert.equal(lines.length, 103);
		assert.equal(readFileSync(`${record}.done`, "utf8"), "103");
		const args = JSON.parse(readFileSync(`${record}.args`, "utf8"));
		assert.deepEqual(args.slice(0, 2), ["--status-file", "/dev/fd/3"]);
	});

	test("omp exits before the child has even started: no status file is left behind", async () => {
		const dir = tempDir();
		const tmp = path.join(dir, "tmp");
		mkdirSync(tmp);
		const record = path.join(dir, "stdin.jsonl");
		const begin = path.join(dir, "begin");
		// The child opens its status file only once `begin` exists, long after omp is gone.
		const r = runOmpLike({ ...KEYS, TMPDIR: tmp, OMP_LANGFUSE_BIN: FAKE_ENGINE, FAKE_ENGINE_RECORD: record, FAKE_ENGINE_BEGIN: begin });
		assert.equal(r.status, 0, r.stderr);
		assert.deepEqual(readdirSync(tmp), [], "no name in the temp directory");
		writeFileSync(begin, "");
		assert.ok(await waitFor(`${record}.done`), "the child finishes on its own once its input ended");
		assert.equal(readFileSync(`${record}.done`, "utf8"), "103");
		assert.deepEqual(readdirSync(tmp), [], "the child wrote to the file it was handed, not a new one");
	});

	test("omp killed: nothing is left in the temp directory either", async () => {
		const dir = tempDir();
		const tmp = path.join(dir, "tmp");
		mkdirSync(tmp);
		const record = path.join(dir, "stdin.jsonl");
		// No exit hook runs: the name must already be gone.
		const r = runOmpLike({ ...KEYS, TMPDIR: tmp, OMP_LANGFUSE_BIN: FAKE_ENGINE, FAKE_ENGINE_RECORD: record }, 'process.kill(process.pid, "SIGKILL");');
		assert.equal(r.signal, "SIGKILL");
		assert.ok(await waitFor(`${record}.done`), "the child finishes on its own once its input ended");
		assert.deepEqual(readdirSync(tmp), []);
	});

	test("LANGFUSE_DEBUG: the child's stderr goes to a private log in the state directory", async () => {
		const dir = tempDir();
		const record = path.join(dir, "stdin.jsonl");
		const state = path.join(dir, "state");
		const r = runOmpLike({
			...KEYS,
			LANGFUSE_DEBUG: "true",
			OMP_LANGFUSE_STATE_DIR: state,
			OMP_LANGFUSE_BIN: FAKE_ENGINE,
			FAKE_ENGINE_RECORD: record,
		});
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stderr, "");
		assert.ok(await waitFor(`${record}.done`));
		const log = path.join(state, "omp-langfuse-extension.log");
		assert.equal(readFileSync(log, "utf8"), "omp-langfuse: transport otlp (fake)\n");
		assert.equal(statSync(log).mode & 0o777, 0o600);
	});

	test("a binary that is not there: one line on stderr, nothing on stdout, exit 0", () => {
		const r = runOmpLike({ ...KEYS, OMP_LANGFUSE_BIN: "/nonexistent/omp-langfuse" });
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
		assert.deepEqual(r.stderr.trim().split("\n"), [
			"omp-langfuse: not found at /nonexistent/omp-langfuse (install omp-langfuse, or set OMP_LANGFUSE_BIN): sessions are not traced",
		]);
	});

	test("a child that crashes: its reason once on stderr, omp unaffected", () => {
		const dir = tempDir();
		const record = path.join(dir, "stdin.jsonl");
		const r = runOmpLike(
			{ ...KEYS, OMP_LANGFUSE_BIN: FAKE_ENGINE, FAKE_ENGINE_RECORD: record, FAKE_ENGINE: "crash" },
			// omp lives on after the crash (bounded: 10 s)
			`for (let i = 0; i < 1000 && !h.engine().down; i++) await new Promise(r => setTimeout(r, 10));
			 handlers.get("turn_start")({ type: "turn_start" }, ctx);
			 process.exit(0);`,
		);
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
		assert.deepEqual(r.stderr.trim().split("\n"), ["omp-langfuse: stopped (exit status 3): something broke; the rest of this omp run is not traced"]);
	});

	test("a child killed with omp still alive: omp goes on", () => {
		const dir = tempDir();
		const record = path.join(dir, "stdin.jsonl");
		const r = runOmpLike(
			{ ...KEYS, OMP_LANGFUSE_BIN: FAKE_ENGINE, FAKE_ENGINE_RECORD: record },
			`const { readFileSync, existsSync } = await import("node:fs");
			 while (!existsSync(${JSON.stringify(`${record}.args`)})) await new Promise(r => setTimeout(r, 10));
			 const pid = Number(readFileSync(${JSON.stringify(`${record}.pid`)}, "utf8"));
			 process.kill(pid, "SIGKILL");
			 for (let i = 0; i < 1000 && !h.engine().down; i++) await new Promise(r => setTimeout(r, 10));
			 for (let i = 0; i < 5; i++) handlers.get("turn_start")({ type: "turn_start" }, ctx);
			 await new Promise(r => setTimeout(r, 100));
			 process.exit(0);`,
		);
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
		assert.deepEqual(r.stderr.trim().split("\n"), ["omp-langfuse: killed (SIGKILL); the rest of this omp run is not traced"]);
	});
});
