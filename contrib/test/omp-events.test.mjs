import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { compiledBridgePath, fakeCtx, fakePi, loadBridge, tempDir } from "../test-support/fake-omp.mjs";

const bridge = await loadBridge();
// These tests are about --events: the engine mode (engine.test.mjs) stays off, whatever
// keys the developer's shell has.
delete process.env.LANGFUSE_PUBLIC_KEY;
delete process.env.LANGFUSE_SECRET_KEY;

function tempFile(name = "events.jsonl") {
	return path.join(tempDir(), name);
}

function readLines(file) {
	return readFileSync(file, "utf8")
		.split("\n")
		.filter(line => line !== "")
		.map(line => JSON.parse(line));
}

/** A writer a test controls: records chunks, can hang until released. */
function controlledWriter({ hang = false } = {}) {
	const chunks = [];
	let release;
	const gate = hang ? new Promise(resolve => (release = resolve)) : Promise.resolve();
	return {
		chunks,
		release: () => release?.(),
		lines: () =>
			chunks
				.join("")
				.split("\n")
				.filter(Boolean)
				.map(l => JSON.parse(l)),
		writer: {
			write: async chunk => {
				await gate;
				chunks.push(chunk);
			},
		},
	};
}

/** Lets a released controlled writer catch up (its writes only await microtasks). */
const drained = () => new Promise(resolve => setTimeout(resolve, 10));

const assistantPartial = {
	role: "assistant",
	content: [{ type: "text", text: "Hello wor" }],
	usage: { input: 0, output: 0 },
	stopReason: "stop",
};

/** One plausible event per hook name. */
function sampleEvent(type) {
	switch (type) {
		case "turn_start":
			return { type, turnIndex: 0, timestamp: 1787588411980 };
		case "turn_end":
			return { type, turnIndex: 0, message: assistantPartial, toolResults: [] };
		case "message_update":
			return {
				type,
				message: assistantPartial,
				assistantMessageEvent: { type: "text_delta", contentIndex: 0, delta: "wor", partial: assistantPartial },
			};
		case "tool_execution_update":
			return { type, toolCallId: "call_1", toolName: "bash", args: { command: "ls" }, partialResult: { content: [] } };
		case "session_stop":
			return { type, messages: [], turn_id: "t1", session_id: "s", stop_hook_active: false, signal: new AbortController().signal };
		case "before_provider_request":
			return { type, payload: { model: "fake-model", messages: [{ role: "user", content: "hi" }] } };
		default:
			return { type };
	}
}

describe("registration", () => {
	test("registers a string --events flag and subscribes to every hook event", async () => {
		const pi = fakePi();
		bridge.default(pi);
		assert.equal(pi.flags.get("events")?.type, "string");
		for (const name of [
			"session_start",
			"input",
			"before_agent_start",
			"agent_start",
			"agent_end",
			"context",
			"turn_start",
			"turn_end",
			"message_start",
			"message_update",
			"message_end",
			"before_provider_request",
			"after_provider_response",
			"tool_call",
			"tool_result",
			"tool_execution_start",
			"tool_execution_update",
			"tool_execution_end",
			"auto_compaction_start",
			"auto_compaction_end",
			"session_compact",
			"auto_retry_start",
			"auto_retry_end",
			"ttsr_triggered",
			"goal_updated",
			"session_stop",
			"session_shutdown",
		]) {
			assert.equal(pi.handlers.get(name)?.length, 1, `no handler for ${name}`);
		}
		assert.deepEqual([...pi.handlers.keys()].sort(), [...bridge.HOOK_EVENTS].sort());
	});

	test("without --events the bridge writes nothing and opens nothing", async () => {
		let opened = 0;
		const pi = fakePi();
		const { queue } = bridge.createEventsBridge(pi, {
			argv: ["--mode", "json", "prompt"],
			openWriter: () => {
				opened++;
				return controlledWriter().writer;
			},
		});
		for (const name of bridge.HOOK_EVENTS) await Promise.all(pi.emit(sampleEvent(name)));
		assert.equal(queue(), undefined);
		assert.equal(opened, 0);
	});

	test("a failing registerFlag does not escape the default export", () => {
		assert.doesNotThrow(() =>
			bridge.default({
				registerFlag() {
					throw new Error("boom");
				},
				getFlag() {},
				on() {},
			}),
		);
	});
});

describe("lines", () => {
	test("every event becomes exactly one line with ts, sessionId and seq, in order", async () => {
		const file = tempFile();
		const pi = fakePi({ events: file });
		let clock = 1_700_000_000_000;
		bridge.createEventsBridge(pi, { now: () => clock++ });
		const names = bridge.HOOK_EVENTS.filter(n => n !== "session_shutdown");
		for (const name of names) {
			const results = pi.emit(sampleEvent(name));
			// Handlers other than session_shutdown return synchronously with "no change".
			assert.deepEqual(results, [undefined], name);
		}
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		const lines = readLines(file);
		assert.deepEqual(
			lines.map(l => l.type),
			[...names, "session_shutdown"],
		);
		lines.forEach((line, i) => {
			assert.equal(line.ts, 1_700_000_000_000 + i);
			assert.equal(line.seq, i);
			assert.equal(line.sessionId, "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000");
		});
		const byType = Object.fromEntries(lines.map(l => [l.type, l]));
		for (const name of ["session_start", "turn_start", "turn_end", "agent_end", "message_end", "session_shutdown"]) {
			assert.deepEqual(byType[name].contextUsage, { tokens: 1234, contextWindow: 128000, percent: 0.96 }, name);
		}
		for (const name of ["message_update", "before_provider_request", "context", "tool_execution_update"]) {
			assert.equal(byType[name].contextUsage, undefined, name);
		}
		// Payload fields survive; the AbortSignal does not.
		assert.equal(byType.turn_start.turnIndex, 0);
		assert.equal(byType.turn_start.timestamp, 1787588411980);
		assert.equal(byType.before_provider_request.payload.model, "fake-model");
		assert.equal(byType.session_stop.turn_id, "t1");
		assert.equal("signal" in byType.session_stop, false);
		assert.equal(existsSync(file), true);
	});

	test("appends to an existing file", async () => {
		const file = tempFile();
		for (const sessionId of ["s1", "s2"]) {
			const pi = fakePi({ events: file });
			bridge.createEventsBridge(pi);
			pi.emit({ type: "session_start" }, fakeCtx(sessionId));
			await Promise.all(pi.emit({ type: "session_shutdown" }, fakeCtx(sessionId)));
		}
		assert.deepEqual(
			readLines(file).map(l => `${l.sessionId}:${l.type}`),
			["s1:session_start", "s1:session_shutdown", "s2:session_start", "s2:session_shutdown"],
		);
	});

	test("session_start says where the session lives and, for a subagent, its parent", async () => {
		const file = tempFile();
		const pi = fakePi({ events: file });
		bridge.createEventsBridge(pi);
		const child = {
			...fakeCtx("child"),
			sessionManager: {
				getSessionId: () => "child",
				getSessionFile: () => "/s/-p/T_par/Scout.jsonl",
				getHeader: () => ({ parentSession: "/s/-p/T_par.jsonl" }),
			},
		};
		pi.emit({ type: "session_start" }, child);
		pi.emit({ type: "turn_start", turnIndex: 0 }, child);
		// A plain session, and a session manager that throws: no fields, still a line.
		pi.emit({ type: "session_start" }, fakeCtx("plain"));
		const broken = { sessionManager: { getSessionId: () => "b", getSessionFile: () => { throw new Error("x"); }, getHeader: () => { throw new Error("y"); } } };
		pi.emit({ type: "session_start" }, broken);
		await Promise.all(pi.emit({ type: "session_shutdown" }, child));
		const lines = readLines(file);
		assert.equal(lines[0].sessionFile, "/s/-p/T_par/Scout.jsonl");
		assert.equal(lines[0].parentSession, "/s/-p/T_par.jsonl");
		assert.equal("parentSession" in lines[1], false, "only on session_start");
		assert.equal("parentSession" in lines[2], false);
		assert.equal(lines[3].type, "session_start");
		assert.equal("sessionFile" in lines[3], false);
	});

	test("message_update is slimmed to the delta, as omp's json mode does", async () => {
		const w = controlledWriter();
		const pi = fakePi({ events: "x.jsonl" });
		bridge.createEventsBridge(pi, { openWriter: () => w.writer });
		pi.emit(sampleEvent("message_update"));
		pi.emit({
			type: "message_update",
			message: assistantPartial,
			assistantMessageEvent: { type: "done", reason: "stop", message: assistantPartial },
		});
		pi.emit({ type: "message_end", message: { ...assistantPartial, providerPayload: { type: "openaiResponsesHistory", items: [1, 2] } } });
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		const [delta, done, end] = w.lines();
		assert.deepEqual(Object.keys(delta).sort(), ["assistantMessageEvent", "seq", "sessionId", "ts", "type"]);
		assert.deepEqual(delta.assistantMessageEvent, { type: "text_delta", contentIndex: 0, delta: "wor" });
		assert.deepEqual(done.assistantMessageEvent, { type: "done", reason: "stop" });
		assert.equal(done.message, undefined);
		assert.equal(end.message.content[0].text, "Hello wor");
		assert.equal(end.message.providerPayload, undefined);
	});

	test("cycles, BigInt, functions, signals, errors, maps and sets do not break a line", async () => {
		const w = controlledWriter();
		const pi = fakePi({ events: "x.jsonl" });
		bridge.createEventsBridge(pi, { openWriter: () => w.writer });
		const shared = { name: "shared" };
		const cyclic = { type: "tool_result", toolCallId: "c1", big: 2n ** 70n, fn: () => 1, signal: AbortSignal.timeout(10_000), a: shared, b: shared };
		cyclic.self = cyclic;
		cyclic.details = { parent: cyclic, error: new TypeError("bad input"), map: new Map([["k", 1]]), set: new Set([1, 2]) };
		assert.deepEqual(pi.emit(cyclic), [undefined]);
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		const [line] = w.lines();
		assert.equal(line.big, "1180591620717411303424");
		assert.equal("fn" in line, false);
		assert.equal("signal" in line, false);
		// The line is a shallow copy of the event, so a reference back to the event itself
		// is written out once more before the cycle is cut.
		assert.equal(line.self.self, "[Circular]");
		assert.equal(line.details.parent.self, "[Circular]");
		assert.equal(line.details.parent.details, "[Circular]");
		// A value seen twice without a cycle is written twice, not marked circular.
		assert.deepEqual(line.a, { name: "shared" });
		assert.deepEqual(line.b, { name: "shared" });
		assert.deepEqual(line.details.error, { name: "TypeError", message: "bad input" });
		assert.deepEqual(line.details.map, { k: 1 });
		assert.deepEqual(line.details.set, [1, 2]);
	});

	test("a throwing sessionManager or getContextUsage still yields a line", async () => {
		const w = controlledWriter();
		const pi = fakePi({ events: "x.jsonl" });
		bridge.createEventsBridge(pi, { openWriter: () => w.writer });
		const ctx = {
			sessionManager: {
				getSessionId() {
					throw new Error("disposed");
				},
			},
			getContextUsage() {
				throw new Error("no model");
			},
		};
		assert.deepEqual(pi.emit({ type: "turn_start", turnIndex: 3 }, ctx), [undefined]);
		assert.deepEqual(pi.emit({ type: "agent_end", messages: [] }, null), [undefined]);
		await Promise.all(pi.emit({ type: "session_shutdown" }, ctx));
		const lines = w.lines();
		assert.deepEqual(
			lines.map(l => [l.type, l.sessionId, l.contextUsage]),
			[
				["turn_start", undefined, undefined],
				["agent_end", undefined, undefined],
				["session_shutdown", undefined, undefined],
			],
		);
	});
});

describe("after session_shutdown", () => {
	test("late events are written synchronously; a new session_start goes back to async writes", async () => {
		const calls = [];
		const writer = {
			write: async chunk => calls.push(["async", JSON.parse(chunk.split("\n")[0]).type]),
			writeSync: chunk => calls.push(["sync", JSON.parse(chunk.split("\n")[0]).type]),
		};
		const pi = fakePi({ events: "x.jsonl" });
		bridge.createEventsBridge(pi, { openWriter: () => writer, exitHook: false });
		pi.emit({ type: "agent_end", messages: [] });
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		pi.emit({ type: "auto_retry_end", success: true, attempt: 1 });
		// Written before the handler returned: nothing waits for a later tick.
		assert.deepEqual(calls.at(-1), ["sync", "auto_retry_end"]);
		pi.emit({ type: "session_start" });
		pi.emit({ type: "turn_start", turnIndex: 0 });
		await drained();
		assert.deepEqual(
			calls.map(c => c.join(":")),
			["async:agent_end", "async:session_shutdown", "sync:auto_retry_end", "sync:session_start", "async:turn_start"],
		);
	});
});

describe("never throws, never blocks", () => {
	for (const [label, openWriter] of [
		["openWriter throws", () => {
			throw new Error("EACCES: permission denied");
		}],
		["write throws synchronously", () => ({
			write() {
				throw new Error("EPIPE");
			},
		})],
		["write rejects", () => ({ write: async () => Promise.reject(new Error("ENOSPC")) })],
	]) {
		test(`${label}: handlers return normally, one warning, drops counted`, async () => {
			const warnings = [];
			const pi = fakePi({ events: "x.jsonl" });
			const { queue } = bridge.createEventsBridge(pi, { openWriter, warn: m => warnings.push(m) });
			for (let i = 0; i < 50; i++) assert.deepEqual(pi.emit({ type: "turn_start", turnIndex: i }), [undefined]);
			const started = Date.now();
			const [shutdown] = pi.emit({ type: "session_shutdown" });
			assert.equal(await shutdown, undefined);
			assert.ok(Date.now() - started < 1000, "shutdown should not wait on a broken writer");
			assert.equal(warnings.length, 1, warnings.join("\n"));
			// 50 turn_starts, session_shutdown and the events_dropped line were all lost.
			assert.equal(queue().dropped, 52);
		});
	}

	test("a writer that hangs: handlers still return at once and shutdown gives up after the flush budget", async () => {
		const w = controlledWriter({ hang: true });
		const pi = fakePi({ events: "x.jsonl" });
		bridge.createEventsBridge(pi, { openWriter: () => w.writer, shutdownFlushMs: 200 });
		const started = Date.now();
		for (let i = 0; i < 1000; i++) assert.deepEqual(pi.emit(sampleEvent("message_update")), [undefined]);
		assert.ok(Date.now() - started < 1000);
		const t0 = Date.now();
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		const waited = Date.now() - t0;
		assert.ok(waited >= 150 && waited < 1500, `waited ${waited} ms`);
		w.release();
	});

	test("overflow drops the oldest deltas first and reports the count at shutdown", async () => {
		const w = controlledWriter({ hang: true });
		const pi = fakePi({ events: "x.jsonl" });
		const { queue } = bridge.createEventsBridge(pi, { openWriter: () => w.writer, maxQueuedLines: 10 });
		// The first line is taken by the (hanging) writer at once; the queue then holds 10.
		pi.emit({ type: "session_start" });
		pi.emit({ type: "turn_start", turnIndex: 0 });
		for (let i = 0; i < 20; i++) {
			pi.emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", contentIndex: 0, delta: `d${i}` } });
			if (i % 5 === 4) pi.emit({ type: "tool_execution_update", toolCallId: "c", toolName: "bash", partialResult: { n: i } });
		}
		pi.emit({ type: "message_end", message: assistantPartial });
		pi.emit({ type: "turn_end", turnIndex: 0, message: assistantPartial, toolResults: [] });
		// 1 taken by the writer, then 27 pushed into 10 slots.
		assert.equal(queue().dropped, 17);
		w.release();
		await drained();
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		const lines = w.lines();
		const types = lines.map(l => l.type);
		// Nothing but deltas was dropped, and the newest deltas survived.
		for (const t of ["session_start", "turn_start", "message_end", "turn_end", "session_shutdown"]) assert.ok(types.includes(t), t);
		const deltas = lines.filter(l => l.type === "message_update").map(l => l.assistantMessageEvent.delta);
		assert.deepEqual(deltas, ["d15", "d16", "d17", "d18", "d19"]);
		const last = lines.at(-1);
		assert.equal(last.type, "events_dropped");
		assert.equal(last.count, 17);
		// seq gaps match the count.
		const seqs = lines.filter(l => l.type !== "events_dropped").map(l => l.seq);
		assert.equal(seqs.at(-1) + 1 - seqs.length, 17);
	});

	test("overflow with no deltas left drops the oldest line of any kind", async () => {
		const w = controlledWriter({ hang: true });
		const pi = fakePi({ events: "x.jsonl" });
		const { queue } = bridge.createEventsBridge(pi, { openWriter: () => w.writer, maxQueuedLines: 3 });
		for (let i = 0; i < 6; i++) pi.emit({ type: "turn_start", turnIndex: i });
		assert.equal(queue().dropped, 2);
		w.release();
		await drained();
		await Promise.all(pi.emit({ type: "session_shutdown" }));
		assert.deepEqual(
			w.lines().map(l => l.turnIndex ?? l.type),
			[0, 3, 4, 5, "session_shutdown", "events_dropped"],
		);
	});

	test("the byte bound drops too", async () => {
		const w = controlledWriter({ hang: true });
		const pi = fakePi({ events: "x.jsonl" });
		const { queue } = bridge.createEventsBridge(pi, { openWriter: () => w.writer, maxQueuedBytes: 2000 });
		pi.emit({ type: "session_start" });
		for (let i = 0; i < 50; i++) pi.emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: "x".repeat(100) } });
		assert.ok(queue().dropped > 30, `dropped ${queue().dropped}`);
		w.release();
	});
});

describe("the --events flag", () => {
	const cases = [
		["--events=PATH", { flag: "FILE", argv: ["--events=FILE"] }, "file"],
		["--events PATH", { flag: "FILE", argv: ["--events", "FILE", "--mode", "json"] }, "file"],
		["--events=-", { flag: "-", argv: ["--mode", "json", "--events=-"] }, "stdout"],
		["--events - (omp leaves the value unset, and takes - as a prompt)", { flag: undefined, argv: ["--mode", "json", "--events", "-"] }, "stdout"],
		["bare --events at the end", { flag: undefined, argv: ["--mode", "json", "p1", "--events"] }, "stdout"],
		["bare --events before another flag", { flag: undefined, argv: ["--events", "--mode", "json", "p1"] }, "stdout"],
		["--events after -- is a prompt", { flag: undefined, argv: ["--mode", "json", "--", "--events"] }, "off"],
		["no flag", { flag: undefined, argv: ["--mode", "json", "p1"] }, "off"],
		// A subagent session gets no flag value, only the process's argv.
		["subagent of --events PATH", { flag: undefined, argv: ["--mode", "json", "--events", "FILE", "p1"] }, "file"],
		["subagent of --events=PATH", { flag: undefined, argv: ["--events=FILE", "p1"] }, "file"],
		["subagent of --events=-", { flag: undefined, argv: ["--mode", "json", "--events=-", "p1"] }, "stdout"],
	];
	for (const [label, { flag, argv }, kind] of cases) {
		test(`${label} -> ${kind}`, () => {
			const dest = bridge.resolveDestination(flag, argv);
			assert.equal(dest.kind, kind);
			if (kind === "file") assert.equal(dest.path, "FILE");
		});
	}

	for (const mode of ["tui", "rpc"]) {
		test(`stdout is refused in ${mode} mode, with one warning`, async () => {
			const warnings = [];
			let opened = 0;
			const pi = fakePi({ events: "-" });
			const { queue } = bridge.createEventsBridge(pi, {
				warn: m => warnings.push(m),
				openWriter: () => {
					opened++;
					return controlledWriter().writer;
				},
			});
			const ctx = { ...fakeCtx(), mode };
			for (let i = 0; i < 3; i++) assert.deepEqual(pi.emit({ type: "turn_start", turnIndex: i }, ctx), [undefined]);
			await Promise.all(pi.emit({ type: "session_shutdown" }, ctx));
			assert.equal(queue(), undefined);
			assert.equal(opened, 0);
			assert.equal(warnings.length, 1);
			assert.match(warnings[0], new RegExp(`${mode} mode`));
		});
	}

	test("a file is fine in tui mode", async () => {
		const file = tempFile();
		const pi = fakePi({ events: file });
		bridge.createEventsBridge(pi);
		const ctx = { ...fakeCtx(), mode: "tui" };
		pi.emit({ type: "session_start" }, ctx);
		await Promise.all(pi.emit({ type: "session_shutdown" }, ctx));
		assert.equal(readLines(file).length, 2);
	});

	// The stdout writer is exercised in a child process, so its output cannot mix with the
	// test runner's own reporting.
	function runChild(flag, argv, after = "") {
		const script = `
			import { pathToFileURL } from "node:url";
			const bridge = await import(pathToFileURL(${JSON.stringify(compiledBridgePath())}).href);
			const handlers = new Map();
			const pi = {
				registerFlag() {},
				getFlag: () => ${JSON.stringify(flag ?? null)} ?? undefined,
				on: (name, h) => handlers.set(name, h),
			};
			bridge.createEventsBridge(pi, { argv: ${JSON.stringify(argv)} });
			const ctx = { sessionManager: { getSessionId: () => "child" }, getContextUsage: () => undefined };
			handlers.get("session_start")({ type: "session_start" }, ctx);
			for (let i = 0; i < 3; i++) handlers.get("message_update")({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: String(i) } }, ctx);
			await handlers.get("session_shutdown")({ type: "session_shutdown" }, ctx);
			${after}
		`;
		return spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
	}

	test("bare --events writes the lines to stdout", () => {
		const r = runChild(undefined, ["--mode", "json", "p1", "--events"]);
		assert.equal(r.status, 0, r.stderr);
		const lines = r.stdout.trim().split("\n").map(l => JSON.parse(l));
		assert.deepEqual(
			lines.map(l => l.type),
			["session_start", "message_update", "message_update", "message_update", "session_shutdown"],
		);
		assert.ok(lines.every(l => l.sessionId === "child" && typeof l.ts === "number"));
	});

	test("--events=- writes to stdout as well", () => {
		const r = runChild("-", ["--events=-"]);
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout.trim().split("\n").length, 5);
	});

	test("no --events: stdout stays empty", () => {
		const r = runChild(undefined, ["--mode", "json", "p1"]);
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
	});

	test("events after session_shutdown still reach the file when the process exits at once", () => {
		// omp keeps emitting while it disposes (auto_retry_end comes out of the final drain)
		// and then calls process.exit without waiting for async writes.
		const file = tempFile();
		const r = runChild(
			file,
			[],
			`handlers.get("auto_retry_end")({ type: "auto_retry_end", success: true, attempt: 1 }, ctx);
			 handlers.get("tool_execution_end")({ type: "tool_execution_end", toolCallId: "c" }, ctx);
			 process.exit(0);`,
		);
		assert.equal(r.status, 0, r.stderr);
		assert.deepEqual(
			readLines(file).map(l => l.type),
			["session_start", "message_update", "message_update", "message_update", "session_shutdown", "auto_retry_end", "tool_execution_end"],
		);
	});

	test("at exit, what is still queued is written synchronously, with the drop count", () => {
		// A writer whose async writes never finish (a stuck reader), and a queue of 5 lines.
		const file = tempFile();
		const script = `
			import { appendFileSync } from "node:fs";
			import { pathToFileURL } from "node:url";
			const bridge = await import(pathToFileURL(${JSON.stringify(compiledBridgePath())}).href);
			const handlers = new Map();
			const pi = { registerFlag() {}, getFlag: () => "ignored", on: (name, h) => handlers.set(name, h) };
			bridge.createEventsBridge(pi, {
				maxQueuedLines: 5,
				openWriter: () => ({ write: () => new Promise(() => {}), writeSync: c => appendFileSync(${JSON.stringify(file)}, c) }),
			});
			const ctx = { sessionManager: { getSessionId: () => "child" } };
			for (let i = 0; i < 20; i++)
				handlers.get("message_update")({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: String(i) } }, ctx);
			process.exit(0);
		`;
		const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
		assert.equal(r.status, 0, r.stderr);
		const lines = readLines(file);
		// Line 0 was taken by the stuck write and is lost; 1..14 were dropped; 15..19 were queued.
		assert.deepEqual(
			lines.map(l => l.assistantMessageEvent?.delta ?? `${l.type}:${l.count}`),
			["15", "16", "17", "18", "19", "events_dropped:14"],
		);
	});

	test("an unwritable path warns once on stderr and does not throw", () => {
		const r = runChild("/nonexistent-dir/for/sure/events.jsonl", []);
		assert.equal(r.status, 0, r.stderr);
		assert.equal(r.stdout, "");
		assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
		assert.match(r.stderr, /omp-events: writing events failed/);
	});
});
