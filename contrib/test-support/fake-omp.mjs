// Node 20 cannot import TypeScript, so the tests transpile contrib/omp-events.ts with the
// TypeScript compiler (types are stripped, nothing is type-checked) into a temp .mjs file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

export const SOURCE = fileURLToPath(new URL("../omp-events.ts", import.meta.url));

let compiled;
const tempDirs = [];
process.on("exit", () => {
	for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temp directory removed when the test process exits. */
export function tempDir(prefix = "omp-events-test-") {
	const dir = mkdtempSync(path.join(tmpdir(), prefix));
	tempDirs.push(dir);
	return dir;
}

/** Path of the transpiled module (compiled once per test process). */
export function compiledBridgePath() {
	if (!compiled) {
		const { outputText } = ts.transpileModule(readFileSync(SOURCE, "utf8"), {
			compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
			fileName: "omp-events.ts",
			reportDiagnostics: false,
		});
		const dir = tempDir();
		compiled = path.join(dir, "omp-events.mjs");
		writeFileSync(compiled, outputText);
	}
	return compiled;
}

export async function loadBridge() {
	return import(pathToFileURL(compiledBridgePath()).href);
}

/** A stand-in for omp's ExtensionAPI: records flags and handlers, and lets a test emit events. */
export function fakePi(flagValues = {}) {
	const flags = new Map();
	const handlers = new Map();
	return {
		flags,
		handlers,
		registerFlag(name, options) {
			flags.set(name, options);
		},
		getFlag(name) {
			return flags.has(name) ? flagValues[name] : undefined;
		},
		on(event, handler) {
			if (!handlers.has(event)) handlers.set(event, []);
			handlers.get(event).push(handler);
		},
		/** Calls the handlers like omp's runner does and returns their results. */
		emit(event, ctx = fakeCtx()) {
			return (handlers.get(event.type) ?? []).map(h => h(event, ctx));
		},
	};
}

export function fakeCtx(sessionId = "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000") {
	return {
		sessionManager: { getSessionId: () => sessionId },
		getContextUsage: () => ({ tokens: 1234, contextWindow: 128000, percent: 0.96 }),
	};
}
