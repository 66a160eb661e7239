/**
 * omp-events: an Oh My Pi (and pi) extension that traces every session into Langfuse
 * through `omp-langfuse`, or writes every extension hook event as one JSON line.
 *
 *   cp omp-events.ts ~/.omp/agent/extensions/      # with LANGFUSE_PUBLIC_KEY/SECRET_KEY set:
 *   omp                                              # every session traced, status in the footer
 *
 *   omp -e contrib/omp-events.ts --events=events.jsonl "prompt"     # append to a file
 *   omp -e contrib/omp-events.ts --mode json --events=- "prompt"     # stdout, beside the json stream
 *
 * Without `--events` and with both keys in the environment, the extension starts one
 * `omp-langfuse` child per omp process (`OMP_LANGFUSE_BIN`, else `omp-langfuse` on PATH),
 * in its own session so terminal signals do not reach it, and streams the lines into its
 * stdin. The child reads every other setting (LANGFUSE_BASE_URL/HOST, FLUSH_MS, MAX_QUEUE,
 * SAMPLE_RATE, TAGS, DEBUG, ...) from the environment it inherits, delivers as a pipe does,
 * and reports its state in a status file (`--status-file`, JSON lines) that this extension
 * polls for a footer item (`langfuse ✓ 42`; off with LANGFUSE_UI_INDICATOR=false). omp's
 * exit never waits for delivery: the child sees the end of its input when omp exits (also
 * after kill -9), closes what is open and finishes on its own within its shutdown timeout.
 * Without keys the extension stays silent.
 *
 * Each line is the hook event object plus:
 *   ts           epoch milliseconds when the handler ran
 *   sessionId    ctx.sessionManager.getSessionId()
 *   seq          per-process counter; a gap means lines were dropped
 *   contextUsage {tokens, contextWindow, percent} from ctx.getContextUsage(), on the
 *                lifecycle events listed in WITH_CONTEXT_USAGE (it is not free to compute)
 *   sessionFile, parentSession  on session_start: the session's file and, for a subagent,
 *                its parent's (so a reader can nest the subagent under its task call)
 *
 * Rules this file lives by:
 * - Never throw into omp: every handler body is wrapped in try/catch and returns undefined,
 *   which omp reads as "no change" for the hooks that may rewrite things (context,
 *   before_provider_request, tool_call, input, ...).
 * - Never block omp: a handler only serialises the event and enqueues the line. A separate
 *   async loop writes the queue out. The queue is bounded; on overflow the oldest streaming
 *   deltas (message_update, tool_execution_update) go first, and the number of dropped lines
 *   is reported as a final {"type":"events_dropped","count":N} line at session_shutdown.
 * - The only handler that waits is session_shutdown, which omp allows about 2 s: it drains
 *   the queue for at most SHUTDOWN_FLUSH_MS and then returns.
 *
 * The file is self-contained (no imports from omp) so it also loads under a plain
 * TypeScript-to-JavaScript transpile for the node tests.
 */
import * as childProcess from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// ---------------------------------------------------------------------------
// The slice of omp's extension API used here (see ExtensionAPI / ExtensionContext in
// @oh-my-pi/pi-coding-agent src/extensibility/extensions/types.ts).
// ---------------------------------------------------------------------------

export interface ContextUsage {
	tokens: number;
	contextWindow: number;
	percent: number;
}

export interface EventContext {
	/** "tui" | "rpc" | "json" | "print" (omp's ExtensionMode). */
	mode?: string;
	/** Whether a UI is there (the TUI); false in print, json and rpc modes. */
	hasUI?: boolean;
	ui?: {
		setStatus?(key: string, text: string | undefined): void;
		notify?(message: string, type?: "info" | "warning" | "error"): void;
	};
	sessionManager?: {
		getSessionId?(): string | undefined;
		getSessionFile?(): string | undefined;
		getHeader?(): { parentSession?: string } | undefined;
	};
	getContextUsage?(): ContextUsage | undefined;
}

export interface ExtensionAPI {
	registerFlag(name: string, options: { description?: string; type: "boolean" | "string"; default?: boolean | string }): void;
	getFlag(name: string): boolean | string | undefined;
	on(event: string, handler: (event: any, ctx: EventContext) => unknown): void;
}

/**
 * Where lines go. `write` resolves when the chunk is handed to the OS (or rejects).
 * `writeSync`, where there is one, is used only at process exit for what is still queued.
 */
export interface LineWriter {
	write(chunk: string): Promise<void>;
	writeSync?(chunk: string): void;
}

/** Destination resolved from the flag: stdout, a file path, or nothing (bridge off). */
export type Destination = { kind: "stdout" } | { kind: "file"; path: string } | { kind: "off" };

export interface BridgeOptions {
	/** Builds the writer for a destination; injected by tests. */
	openWriter?: (dest: Destination) => LineWriter;
	/** Raw argv (after the executable and script); used to notice a bare `--events`. */
	argv?: readonly string[];
	/** Queue bounds: whichever is hit first triggers dropping. */
	maxQueuedLines?: number;
	maxQueuedBytes?: number;
	/** How long session_shutdown waits for the queue to drain. */
	shutdownFlushMs?: number;
	/** Clock, injectable for tests. */
	now?: () => number;
	/** Write what is still queued synchronously at process exit (default true). */
	exitHook?: boolean;
	/** Where the bridge reports its own trouble (one line per problem kind). */
	warn?: (message: string) => void;
	/** The environment (keys, OMP_LANGFUSE_BIN, LANGFUSE_UI_INDICATOR); default process.env. */
	env?: Record<string, string | undefined>;
	/** How the engine child is started and watched; injected by tests. */
	engine?: EngineOptions;
}

// Every event omp 18.2 delivers to extensions (the `on(...)` overloads in types.ts).
// omp has no wildcard subscription, so the list is explicit; unknown names are harmless.
export const HOOK_EVENTS: readonly string[] = [
	"resources_discover",
	"session_start",
	"session_before_switch",
	"session_switch",
	"session_before_branch",
	"session_branch",
	"session_before_compact",
	"session.compacting",
	"session_compact",
	"session_before_tree",
	"session_tree",
	"session_stop",
	"session_shutdown",
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
	"tool_approval_requested",
	"tool_approval_resolved",
	"auto_compaction_start",
	"auto_compaction_end",
	"auto_retry_start",
	"auto_retry_end",
	"retry_fallback_applied",
	"retry_fallback_succeeded",
	"ttsr_triggered",
	"todo_reminder",
	"goal_updated",
	"credential_disabled",
	"mcp_notification",
	"user_bash",
	"user_python",
];

/** Streaming deltas: many per turn, each superseded by the next; the first to go on overflow. */
const DROPPABLE = new Set(["message_update", "tool_execution_update"]);

/** Events that carry contextUsage. Computing it walks the context, so not on every delta. */
const WITH_CONTEXT_USAGE = new Set([
	"session_start",
	"agent_start",
	"agent_end",
	"turn_start",
	"turn_end",
	"message_end",
	"session_compact",
	"auto_compaction_end",
	"session_shutdown",
]);

const DEFAULTS = {
	maxQueuedLines: 20_000,
	maxQueuedBytes: 64 * 1024 * 1024,
	shutdownFlushMs: 1_500, // omp cuts session_shutdown handlers off at 2 s
};

/** Write at most this much per write call, so one call never holds a huge string. */
const MAX_BATCH_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------

/**
 * Reduce an event to what is worth a line. message_update carries the whole message
 * snapshot twice (`message` and `assistantMessageEvent.partial`), which grows
 * quadratically over a turn; keep only the delta, exactly as omp's own `--mode json` does.
 */
export function slimEvent(event: any): any {
	if (event?.type !== "message_update") return event;
	const streamEvent = event.assistantMessageEvent;
	if (!streamEvent || typeof streamEvent !== "object") return { type: event.type };
	if (streamEvent.type === "done" || streamEvent.type === "error") {
		// The final message follows as message_end; the reason is all that is new here.
		return { type: event.type, assistantMessageEvent: { type: streamEvent.type, reason: streamEvent.reason } };
	}
	const { partial: _partial, ...rest } = streamEvent;
	return { type: event.type, assistantMessageEvent: rest };
}

/**
 * JSON.stringify that never throws on what hook events can hold: cycles become
 * "[Circular]" (shared, non-cyclic references are kept), BigInt becomes a string,
 * functions and AbortSignals are dropped, Errors keep name/message, Maps and Sets
 * become objects and arrays. `providerPayload` (provider-native replay state on
 * messages) is dropped as omp's json mode does.
 */
export function safeStringify(value: unknown): string {
	const ancestors: unknown[] = [];
	return JSON.stringify(value, function (this: unknown, key: string, val: unknown) {
		if (key === "providerPayload") return undefined;
		switch (typeof val) {
			case "bigint":
				return val.toString();
			case "function":
			case "symbol":
				return undefined;
			case "object":
				break;
			default:
				return val;
		}
		if (val === null) return val;
		if (typeof AbortSignal !== "undefined" && val instanceof AbortSignal) return undefined;
		// `this` is the object holding `key`: unwind to it, so `ancestors` is the path from
		// the root to `val`. A value already on that path is a cycle.
		while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
		if (ancestors.includes(val)) return "[Circular]";
		let out: unknown = val;
		if (val instanceof Error) out = { name: val.name, message: val.message };
		else if (val instanceof Map) out = Object.fromEntries(val);
		else if (val instanceof Set) out = [...val];
		ancestors.push(out);
		return out;
	});
}

// ---------------------------------------------------------------------------
// Bounded queue + async writer
// ---------------------------------------------------------------------------

/**
 * A FIFO of serialised lines with a background writer. push() never waits and never
 * throws; the writer loop runs as long as there is something queued.
 */
export class LineQueue {
	// Insertion-ordered: the first key is the oldest line. `droppable` mirrors the keys of
	// delta lines so the oldest delta is found in O(1) when the queue overflows.
	// Sizes are counted in string length (UTF-16 units), close enough to bytes for a bound.
	#lines = new Map<number, string>();
	#droppable = new Set<number>();
	#nextId = 0;
	#bytes = 0;
	#dropped = 0;
	#writing: Promise<void> | undefined;
	#writer: LineWriter | undefined;
	#failed = false;
	#sync = false;
	readonly #open: () => LineWriter;
	readonly #maxLines: number;
	readonly #maxBytes: number;
	readonly #warn: (message: string) => void;

	constructor(open: () => LineWriter, maxLines: number, maxBytes: number, warn: (message: string) => void) {
		this.#open = open;
		this.#maxLines = maxLines;
		this.#maxBytes = maxBytes;
		this.#warn = warn;
	}

	get dropped(): number {
		return this.#dropped;
	}

	get queued(): number {
		return this.#lines.size;
	}

	push(line: string, droppable: boolean): void {
		if (this.#failed) {
			this.#dropped++;
			return;
		}
		const id = this.#nextId++;
		this.#lines.set(id, line);
		this.#bytes += line.length;
		if (droppable) this.#droppable.add(id);
		while (this.#lines.size > this.#maxLines || (this.#bytes > this.#maxBytes && this.#lines.size > 1)) {
			this.#dropOne();
		}
		if (this.#sync && !this.#writing) this.drainSync();
		if (this.#lines.size > 0) this.#kick();
	}

	/**
	 * Write synchronously where the writer can (see drainSync), or asynchronously again.
	 * Synchronous from session_shutdown on: omp then exits without waiting for async
	 * writes, and the few events it still emits are small.
	 */
	setSync(on: boolean): void {
		this.#sync = on;
	}

	/** Oldest delta if there is one, else the oldest line of any kind. */
	#dropOne(): void {
		const first = this.#droppable.values().next();
		const id = first.done ? this.#lines.keys().next().value : first.value;
		if (id === undefined) return;
		this.#bytes -= this.#lines.get(id)?.length ?? 0;
		this.#lines.delete(id);
		this.#droppable.delete(id);
		this.#dropped++;
	}

	#kick(): void {
		if (this.#writing || this.#failed) return;
		this.#writing = this.#drain().finally(() => {
			this.#writing = undefined;
			// Lines pushed while the last write was settling.
			if (this.#lines.size > 0 && !this.#failed) this.#kick();
		});
	}

	async #drain(): Promise<void> {
		let inFlight = 0; // lines taken off the queue whose write has not completed
		try {
			this.#writer ??= this.#open();
			while (this.#lines.size > 0) {
				let batch = "";
				for (const [id, line] of this.#lines) {
					if (batch.length > 0 && batch.length + line.length > MAX_BATCH_BYTES) break;
					batch += line;
					inFlight++;
					this.#lines.delete(id);
					this.#droppable.delete(id);
					this.#bytes -= line.length;
				}
				await this.#writer.write(batch);
				inFlight = 0;
			}
		} catch (error) {
			// A broken destination (EPIPE, disk full, bad path) stays broken: stop writing,
			// count what is lost, say so once on stderr, and never bother omp with it.
			this.#failed = true;
			this.#dropped += inFlight + this.#lines.size;
			this.#lines.clear();
			this.#droppable.clear();
			this.#bytes = 0;
			this.#warn(`omp-events: writing events failed, dropping further events: ${describe(error)}`);
		}
	}

	/** Wait until the queue is empty, the writer failed, or `ms` passed. */
	async flush(ms: number): Promise<void> {
		const deadline = Date.now() + ms;
		while ((this.#lines.size > 0 || this.#writing) && !this.#failed) {
			const left = deadline - Date.now();
			if (left <= 0) return;
			this.#kick();
			let timer: ReturnType<typeof setTimeout> | undefined;
			await Promise.race([
				this.#writing,
				new Promise<void>(resolve => {
					timer = setTimeout(resolve, left);
				}),
			]);
			clearTimeout(timer);
		}
	}

	/**
	 * Last resort at process exit: write what is still queued synchronously, if the writer
	 * can. A batch whose async write is still in flight may then land after these lines;
	 * `seq` tells the order.
	 */
	drainSync(): void {
		const writer = this.#writer ?? (this.#lines.size > 0 && !this.#failed ? this.#open() : undefined);
		if (!writer?.writeSync || this.#failed || this.#lines.size === 0) return;
		this.#writer = writer;
		const chunk = [...this.#lines.values()].join("");
		const count = this.#lines.size;
		this.#lines.clear();
		this.#droppable.clear();
		this.#bytes = 0;
		try {
			writer.writeSync(chunk);
		} catch {
			this.#dropped += count;
		}
	}
}

function describe(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}

/** Real writers: stdout through process.stdout (shared, ordered with omp's own json lines), or an append-mode file. */
export function openWriter(dest: Destination): LineWriter {
	if (dest.kind === "stdout") {
		// No writeSync: at exit a synchronous write to fd 1 could cut into a chunk that
		// process.stdout is still writing. Lines still queued at exit are lost.
		return {
			write: chunk =>
				new Promise<void>((resolve, reject) => {
					// The callback fires once the chunk left the stream buffer, which gives
					// backpressure without blocking: the queue grows while stdout is slow.
					process.stdout.write(chunk, err => (err ? reject(err) : resolve()));
				}),
		};
	}
	if (dest.kind === "file") {
		// Opened once and kept open until the process exits: omp still emits events after
		// session_shutdown (auto_retry_end, for one, comes out of the final drain).
		const handle = fs.promises.open(dest.path, "a");
		// Keep an early open failure from being reported as an unhandled rejection; the
		// first write surfaces it.
		handle.catch(() => {});
		return {
			write: async chunk => {
				await (await handle).write(chunk);
			},
			// Only for a regular file, where a synchronous append cannot hang (a named pipe
			// without a reader could). O_APPEND makes each write land whole at the end of the
			// file, even beside a concurrent async write.
			writeSync: isRegularFileOrAbsent(dest.path) ? chunk => fs.appendFileSync(dest.path, chunk) : undefined,
		};
	}
	throw new Error("omp-events: no destination");
}

function isRegularFileOrAbsent(path: string): boolean {
	try {
		return fs.statSync(path).isFile();
	} catch {
		return true; // does not exist yet: the open creates a regular file
	}
}

/**
 * Turn the flag into a destination. omp parses a string flag's value from `--events=V`
 * or `--events V` (when V does not start with "-"). A bare `--events` at the end of the
 * command line or before another flag leaves the value unset, so argv is checked for it.
 * argv is also all a subagent session has: omp 18.2.3 runs the extension there without
 * the flag's value, and its lines must go where the parent's go (checked with the real omp:
 * reading only "is --events there" sent a subagent's lines to the parent's stdout).
 */
export function resolveDestination(flag: unknown, argv: readonly string[]): Destination {
	const fromValue = (v: string): Destination => (v === "" || v === "-" ? { kind: "stdout" } : { kind: "file", path: v });
	if (typeof flag === "string" && flag !== "") return fromValue(flag);
	if (flag === true) return { kind: "stdout" };
	const end = argv.indexOf("--");
	const options = end === -1 ? argv : argv.slice(0, end);
	for (let i = 0; i < options.length; i++) {
		const arg = options[i];
		if (arg.startsWith("--events=")) return fromValue(arg.slice("--events=".length));
		if (arg === "--events") {
			const next = options[i + 1];
			return next !== undefined && !next.startsWith("-") ? fromValue(next) : { kind: "stdout" };
		}
	}
	return { kind: "off" };
}

// ---------------------------------------------------------------------------
// The engine: one omp-langfuse child per omp process
// ---------------------------------------------------------------------------

/** The slice of node's ChildProcess the engine uses. */
export interface EngineChild {
	stdin: {
		write(chunk: string, cb: (err?: Error | null) => void): unknown;
		on(event: "error", listener: (error: Error) => void): unknown;
		unref?(): void;
		_handle?: { fd?: number };
	} | null;
	stderr?: { on(event: "data", listener: (chunk: Buffer | string) => void): unknown; on(event: "error", listener: (error: Error) => void): unknown; unref?(): void } | null;
	on(event: "error", listener: (error: Error & { code?: string }) => void): unknown;
	on(event: "exit", listener: (code: number | null, signal: string | null) => void): unknown;
	unref?(): void;
}

export interface EngineOptions {
	/** node's child_process.spawn, or a fake. */
	spawn?: (command: string, args: string[], options: Record<string, unknown>) => EngineChild;
	/** Where the child writes its status lines (default: a fresh file in the temp directory). */
	statusPath?: string;
	/** How often the status file is read (default 500 ms). */
	pollMs?: number;
}

/** One line of the child's status file (`omp-langfuse --status-file`, see its man page). */
export interface EngineStatus {
	state: string;
	delivered?: number;
	rejected?: number;
	spooled?: number;
	cause?: string;
}

/** Keys in the environment: the engine starts; without them the extension stays silent. */
export function hasKeys(env: Record<string, string | undefined>): boolean {
	return !!env.LANGFUSE_PUBLIC_KEY?.trim() && !!env.LANGFUSE_SECRET_KEY?.trim();
}

/** LANGFUSE_UI_INDICATOR as omp-langfuse reads it: on unless it says false. */
export function indicatorOn(env: Record<string, string | undefined>): boolean {
	const v = env.LANGFUSE_UI_INDICATOR?.trim().toLowerCase();
	return !(v === "0" || v === "false" || v === "no" || v === "off");
}

/** The footer item for the engine's state. */
export function footerText(status: EngineStatus | undefined, down: string | undefined): string {
	if (down) return `langfuse ✗ ${down}`;
	switch (status?.state) {
		case "failed":
			return `langfuse ✗ ${status.cause ?? "failed"}`;
		case "retrying":
			return "langfuse ⟳ retrying";
		case "spooled":
			return `langfuse ⏸ spooled ${status.spooled ?? 0}`;
		default:
			return `langfuse ✓ ${status?.delivered ?? 0}`;
	}
}

/** What the user is told, once, when the engine is in trouble (undefined: no trouble). */
export function troubleNotice(status: EngineStatus | undefined): string | undefined {
	if (status?.state !== "failed") return undefined;
	const cause = status.cause ?? "delivery failed";
	const hint = cause.startsWith("keys rejected") ? "; check LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL" : "";
	return `omp-langfuse: Langfuse tracing stopped: ${cause}${hint}. What was recorded is spooled for the next run.`;
}

/**
 * With LANGFUSE_DEBUG on, the child's stderr goes to `omp-langfuse-extension.log` in its
 * state directory (appended, 0600); the descriptor, or undefined when off or unopenable.
 */
export function debugLog(env: Record<string, string | undefined>): number | undefined {
	const v = env.LANGFUSE_DEBUG?.trim().toLowerCase();
	if (!(v === "1" || v === "true" || v === "yes" || v === "on")) return undefined;
	return openDebugLog(env) ?? undefined;
}

/** Where the debug log goes: omp-langfuse's state directory, as it picks it. */
export function stateDir(env: Record<string, string | undefined>): string {
	const explicit = env.OMP_LANGFUSE_STATE_DIR?.trim();
	if (explicit) return explicit;
	const xdg = env.XDG_STATE_HOME?.trim();
	return path.join(xdg || path.join(env.HOME || os.homedir(), ".local", "state"), "omp-langfuse");
}

function openDebugLog(env: Record<string, string | undefined>): number | undefined {
	try {
		const dir = stateDir(env);
		fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
		return fs.openSync(path.join(dir, "omp-langfuse-extension.log"), "a", 0o600);
	} catch {
		return undefined;
	}
}

/**
 * The status file, created (0600) and opened for the child to append to, where a child can
 * be handed an open file by name (`/dev/fd/3`; not on Windows, where it opens the path).
 */
function openStatusFile(statusPath: string): number | undefined {
	if (process.platform === "win32") return undefined;
	try {
		return fs.openSync(statusPath, "a+", 0o600);
	} catch {
		return undefined; // the child says why it cannot open it
	}
}

/** The notice for a binary that is not there. */
function notFound(bin: string): string {
	const where = bin.includes("/") ? `not found at ${bin}` : `${bin} not found on PATH`;
	return `${where} (install omp-langfuse, or set OMP_LANGFUSE_BIN): sessions are not traced`;
}

/** Last bytes of the child's stderr kept, to name why it stopped. */
const STDERR_TAIL = 4096;

/**
 * The omp-langfuse child, its stdin as a LineWriter, and its status file. Nothing here
 * throws: a child that cannot start or stops is reported once through `trouble` and the
 * writer then fails (the queue drops and counts what follows).
 */
export class Engine {
	readonly statusPath: string;
	/** The status file, open for reading, once its name is gone (see the constructor). */
	#statusFd: number | undefined;
	#child: EngineChild | undefined;
	#down: string | undefined;
	#status: EngineStatus | undefined;
	#offset = 0;
	#partial = "";
	#stderr = "";
	#timer: ReturnType<typeof setInterval> | undefined;
	readonly #trouble: (message: string, footer: string) => void;
	readonly #changed: () => void;

	constructor(
		env: Record<string, string | undefined>,
		options: EngineOptions,
		trouble: (message: string, footer: string) => void,
		changed: () => void,
	) {
		this.#trouble = trouble;
		this.#changed = changed;
		this.statusPath = options.statusPath ?? path.join(os.tmpdir(), `omp-langfuse-${process.pid}-${Date.now().toString(36)}.status.jsonl`);
		const bin = env.OMP_LANGFUSE_BIN?.trim() || "omp-langfuse";
		const spawn = options.spawn ?? (childProcess.spawn as unknown as NonNullable<EngineOptions["spawn"]>);
		// The status file is the footer's; a live line on a stderr nobody sees is not.
		// It is created here, handed to the child open (its descriptor 3) and its name
		// removed at once: read and written through descriptors, it is gone with the last
		// of them, however omp ends (even killed), and a child still starting when omp
		// exits has no name to create it again by.
		const statusFd = openStatusFile(this.statusPath);
		this.#statusFd = statusFd;
		const args = ["--status-file", statusFd === undefined ? this.statusPath : "/dev/fd/3", "--ui-indicator=false"];
		const log = debugLog(env);
		try {
			const child = spawn(bin, args, {
				// Its own session: Ctrl+C in the TUI and the terminal closing do not reach it;
				// it ends when its stdin does (omp exited, however).
				detached: true,
				// stderr: read while omp runs (to say why the child stopped), or, with
				// LANGFUSE_DEBUG, a log file that outlives omp (the exit summary included).
				stdio: statusFd === undefined ? ["pipe", "ignore", log ?? "pipe"] : ["pipe", "ignore", log ?? "pipe", statusFd],
				env: { ...env },
			});
			this.#child = child;
			child.on("error", error =>
				this.#stopped(error.code === "ENOENT" ? notFound(bin) : `could not start ${bin}: ${describe(error)}`, "not running"),
			);
			child.on("exit", (code, signal) => {
				// Its last message says why it gave up; a signal needs no other reason.
				const last = signal ? undefined : this.#stderr.trim().split("\n").pop()?.replace(/^omp-langfuse: /, "");
				const how = signal ? `killed (${signal})` : `stopped (exit status ${code})`;
				this.#stopped(`${how}${last ? `: ${last}` : ""}; the rest of this omp run is not traced`, signal ? "stopped" : `stopped (${code})`);
			});
			child.stdin?.on("error", () => {}); // EPIPE after the child died: the exit handler tells
			child.stderr?.on("error", () => {});
			child.stderr?.on("data", chunk => {
				this.#stderr = (this.#stderr + String(chunk)).slice(-STDERR_TAIL);
			});
			// omp's exit never waits for the child or its pipes.
			child.unref?.();
			child.stdin?.unref?.();
			child.stderr?.unref?.();
		} catch (error) {
			this.#stopped(`could not start ${bin}: ${describe(error)}`, "not running");
		} finally {
			// The child has its own copy.
			if (log !== undefined) {
				try {
					fs.closeSync(log);
				} catch {}
			}
			if (statusFd !== undefined) {
				try {
					fs.unlinkSync(this.statusPath);
				} catch {}
			}
		}
		this.#timer = setInterval(() => this.poll(), options.pollMs ?? 500);
		(this.#timer as { unref?: () => void }).unref?.();
	}

	/** Why the child is not running (for the footer), if it is not. */
	get down(): string | undefined {
		return this.#down;
	}

	get status(): EngineStatus | undefined {
		return this.#status;
	}

	#stopped(message: string, footer: string): void {
		if (this.#down) return;
		this.poll();
		this.#down = footer;
		this.#child = undefined;
		this.#trouble(`omp-langfuse: ${message.trim()}`, footer);
		this.#changed();
	}

	writer(): LineWriter {
		const child = this.#child;
		const stdin = child?.stdin;
		if (!stdin || this.#down) throw new Error(`omp-langfuse is ${this.#down ?? "not running"}`);
		const fd = stdin._handle?.fd;
		return {
			write: chunk =>
				new Promise<void>((resolve, reject) => {
					if (this.#down) return reject(new Error(`omp-langfuse is ${this.#down}`));
					stdin.write(chunk, err => (err ? reject(err) : resolve()));
				}),
			// At exit only: the pipe's descriptor, where the runtime exposes it.
			writeSync: typeof fd === "number" && fd >= 0 ? chunk => void fs.writeSync(fd, chunk) : undefined,
		};
	}

	/** Read what the child added to its status file; tell `changed` when the state moved. */
	poll(): void {
		let text = "";
		try {
			// Most polls find nothing new: a stat, no open, no buffer.
			const own = this.#statusFd;
			if ((own === undefined ? fs.statSync(this.statusPath) : fs.fstatSync(own)).size <= this.#offset) return;
			const fd = own ?? fs.openSync(this.statusPath, "r");
			try {
				const buf = Buffer.alloc(64 * 1024);
				for (;;) {
					const n = fs.readSync(fd, buf, 0, buf.length, this.#offset);
					if (n <= 0) break;
					this.#offset += n;
					text += buf.toString("utf8", 0, n);
				}
			} finally {
				if (fd !== own) fs.closeSync(fd);
			}
		} catch {
			return; // not there yet
		}
		const lines = (this.#partial + text).split("\n");
		this.#partial = lines.pop() ?? "";
		let latest: EngineStatus | undefined;
		for (const line of lines) {
			try {
				const v = JSON.parse(line);
				if (v && typeof v.state === "string") latest = v;
			} catch {}
		}
		if (!latest) return;
		this.#status = latest;
		const notice = troubleNotice(latest);
		if (notice) this.#trouble(notice, footerText(latest, undefined));
		this.#changed();
	}

	/**
	 * At exit: stop polling and let go of the status file (the child keeps writing to its
	 * open copy; where it was given the path, the file is removed now).
	 */
	dispose(): void {
		if (this.#timer) clearInterval(this.#timer);
		const fd = this.#statusFd;
		this.#statusFd = undefined;
		try {
			if (fd === undefined) fs.unlinkSync(this.statusPath);
			else fs.closeSync(fd);
		} catch {}
	}
}

/** The process's engine, shared by every session's bridge (subagents included). */
let sharedEngine:
	| { engine: Engine; queue: LineQueue; ui: { ctx: EventContext | undefined }; footer: () => void }
	| undefined;

/** For tests: forget the process's engine (its child is left alone). */
export function resetEngine(): void {
	sharedEngine?.engine.dispose();
	sharedEngine = undefined;
}

// ---------------------------------------------------------------------------
// The extension
// ---------------------------------------------------------------------------

export function createEventsBridge(
	pi: ExtensionAPI,
	options: BridgeOptions = {},
): { queue: () => LineQueue | undefined; engine: () => Engine | undefined } {
	const now = options.now ?? Date.now;
	const shutdownFlushMs = options.shutdownFlushMs ?? DEFAULTS.shutdownFlushMs;
	const warnedAbout = new Set<string>();
	const warn =
		options.warn ??
		((message: string) => {
			try {
				process.stderr.write(`${message}\n`);
			} catch {}
		});
	const warnOnce = (kind: string, message: string) => {
		if (warnedAbout.has(kind)) return;
		warnedAbout.add(kind);
		warn(message);
	};

	pi.registerFlag("events", {
		description: "Write every hook event as a JSON line to PATH (append), or to stdout for `-` or no value",
		type: "string",
	});

	// omp sets extension flag values after loading extensions, so the destination can only
	// be read once events arrive.
	let dest: Destination | undefined;
	let queue: LineQueue | undefined;
	let seq = 0;
	let reportedDrops = 0;

	/** Queue an events_dropped line if lines were dropped since the last report. */
	const reportDrops = (q: LineQueue, ctx: EventContext | undefined, write: (line: string) => void) => {
		if (q.dropped === reportedDrops) return;
		reportedDrops = q.dropped;
		write(`${JSON.stringify({ type: "events_dropped", count: q.dropped, ts: now(), sessionId: sessionIdOf(ctx), seq: seq++ })}\n`);
	};

	const env = options.env ?? process.env;
	const maxLines = options.maxQueuedLines ?? DEFAULTS.maxQueuedLines;
	const maxBytes = options.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes;

	/** The TUI's context, for the footer item and notices; the footer shows at once. */
	const noteUi = (ctx: EventContext | undefined) => {
		if (!sharedEngine || !ctx?.hasUI) return;
		const first = !sharedEngine.ui.ctx;
		sharedEngine.ui.ctx = ctx;
		if (first) sharedEngine.footer();
	};

	/** The process's engine (started by the first session that needs it) and its queue. */
	const engineQueue = (): LineQueue => {
		if (!sharedEngine) {
			const ui: { ctx: EventContext | undefined } = { ctx: undefined };
			const indicator = indicatorOn(env);
			let told = false;
			// Once per process, in plain words: a notification in the TUI, stderr elsewhere
			// (never stdout: in json mode that is omp's data).
			const trouble = (message: string) => {
				if (told) return;
				told = true;
				const c = ui.ctx;
				if (c?.hasUI && typeof c.ui?.notify === "function") {
					try {
						c.ui.notify(message, "warning");
						return;
					} catch {}
				}
				warn(message);
			};
			let engine: Engine | undefined;
			const footer = () => {
				if (!indicator || !engine || !ui.ctx?.hasUI) return;
				try {
					ui.ctx.ui?.setStatus?.("langfuse", footerText(engine.status, engine.down));
				} catch {}
			};
			engine = new Engine(env, options.engine ?? {}, trouble, footer);
			const started = engine;
			// The engine tells why writes fail (the child stopped); the queue only counts.
			const q = new LineQueue(() => started.writer(), maxLines, maxBytes, () => {});
			sharedEngine = { engine: started, queue: q, ui, footer };
			if (options.exitHook !== false) {
				atExit(() => {
					q.setSync(true);
					q.drainSync();
					// A last look: trouble the child reported since the last poll is still told.
					started.poll();
					started.dispose();
				});
			}
		}
		return sharedEngine.queue;
	};

	const getQueue = (ctx: EventContext | undefined): LineQueue | undefined => {
		if (sharedEngine && dest?.kind === "off") {
			noteUi(ctx);
			return sharedEngine.queue;
		}
		if (!dest) {
			dest = resolveDestination(pi.getFlag("events"), options.argv ?? process.argv.slice(2));
			if (dest.kind === "off" && hasKeys(env)) {
				const q = engineQueue();
				noteUi(ctx);
				return q;
			}
			// In the TUI stdout is the screen, in rpc/acp modes it is the protocol channel:
			// lines there would break omp, so stdout is only used in json and text print mode.
			const mode = ctx?.mode;
			if (dest.kind === "stdout" && typeof mode === "string" && mode !== "json" && mode !== "print") {
				warn(`omp-events: not writing events to stdout in ${mode} mode; use --events=PATH`);
				dest = { kind: "off" };
			}
			if (dest.kind !== "off") {
				const target = dest;
				const open = options.openWriter ?? openWriter;
				const q = new LineQueue(() => open(target), maxLines, maxBytes, message => warnOnce("write", message));
				queue = q;
				// omp emits a few events after session_shutdown, while it finishes disposing, and
				// then exits without waiting for async writes. Write what is left on the way out.
				if (options.exitHook !== false) {
					atExit(() => {
						q.setSync(true); // nothing async completes from here on
						q.drainSync();
						reportDrops(q, undefined, line => {
							q.push(line, false);
							q.drainSync();
						});
					});
				}
			}
		}
		return queue;
	};

	const record = (event: any, ctx: EventContext): LineQueue | undefined => {
		const q = getQueue(ctx);
		if (!q) return undefined;
		const type = typeof event?.type === "string" ? event.type : "unknown";
		const line: Record<string, unknown> = { ...slimEvent(event), ts: now(), sessionId: sessionIdOf(ctx), seq: seq++ };
		if (WITH_CONTEXT_USAGE.has(type)) {
			const usage = contextUsageOf(ctx);
			if (usage) line.contextUsage = usage;
		}
		if (type === "session_start") Object.assign(line, whereabouts(ctx));
		let text: string;
		try {
			text = safeStringify(line);
		} catch (error) {
			// Only a throwing toJSON or a getter gets here; keep the fact that the event happened.
			text = JSON.stringify({ type, ts: line.ts, sessionId: line.sessionId, seq: line.seq, serializeError: describe(error) });
		}
		q.push(`${text}\n`, DROPPABLE.has(type));
		return q;
	};

	for (const name of HOOK_EVENTS) {
		if (name === "session_shutdown") continue;
		pi.on(name, (event, ctx) => {
			try {
				const q = record(event, ctx);
				// A process that goes on after session_shutdown with a new session is not
				// exiting after all: back to async writes.
				if (name === "session_start") q?.setSync(false);
			} catch (error) {
				warnOnce("record", `omp-events: could not record ${name}: ${describe(error)}`);
			}
			return undefined;
		});
	}

	pi.on("session_shutdown", async (event, ctx) => {
		try {
			const q = record(event, ctx);
			if (!q) return undefined;
			const deadline = Date.now() + shutdownFlushMs;
			// Drain first so the count includes whatever a failing writer loses, then report
			// drops last, after everything that did make it out.
			await q.flush(shutdownFlushMs);
			reportDrops(q, ctx, line => q.push(line, false));
			await q.flush(Math.max(0, deadline - Date.now()));
			q.setSync(true);
		} catch (error) {
			warnOnce("shutdown", `omp-events: shutdown flush failed: ${describe(error)}`);
		}
		return undefined;
	});

	return { queue: () => queue ?? (dest?.kind === "off" ? sharedEngine?.queue : undefined), engine: () => sharedEngine?.engine };
}

// One process "exit" listener for all bridge instances (omp can load the extension once per
// session, subagents included), instead of one listener each.
const exitTasks: Array<() => void> = [];
function atExit(task: () => void): void {
	if (exitTasks.length === 0) {
		process.once("exit", () => {
			for (const t of exitTasks) {
				try {
					t();
				} catch {}
			}
		});
	}
	exitTasks.push(task);
}

function sessionIdOf(ctx: EventContext | undefined): string | undefined {
	try {
		return ctx?.sessionManager?.getSessionId?.() ?? undefined;
	} catch {
		return undefined;
	}
}

/**
 * Where the session lives and, for a subagent, its parent (omp's header `parentSession`:
 * the parent's session file). A reader nests a subagent's events under the parent's `task`
 * call with these, as it does for the session files on disk.
 */
function whereabouts(ctx: EventContext | undefined): { sessionFile?: string; parentSession?: string } {
	const out: { sessionFile?: string; parentSession?: string } = {};
	try {
		const file = ctx?.sessionManager?.getSessionFile?.();
		if (typeof file === "string" && file !== "") out.sessionFile = file;
	} catch {}
	try {
		const parent = ctx?.sessionManager?.getHeader?.()?.parentSession;
		if (typeof parent === "string" && parent !== "") out.parentSession = parent;
	} catch {}
	return out;
}

function contextUsageOf(ctx: EventContext): ContextUsage | undefined {
	try {
		const usage = ctx?.getContextUsage?.();
		if (!usage || typeof usage !== "object") return undefined;
		return { tokens: usage.tokens, contextWindow: usage.contextWindow, percent: usage.percent };
	} catch {
		return undefined;
	}
}

export default function (pi: ExtensionAPI): void {
	try {
		createEventsBridge(pi);
	} catch (error) {
		// Loading must not take omp down either.
		try {
			process.stderr.write(`omp-events: not loaded: ${describe(error)}\n`);
		} catch {}
	}
}
