// Child processes of `mesh up` (sidecars and demo apps): each writes to its
// own log file, is stopped with SIGTERM then SIGKILL after a grace period,
// and is SIGKILLed when this process exits without having stopped it.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";

const LOG_TAIL_LINES = 10;

export class ManagedProcess {
  /** why it ended ("exited (1)", "failed to start: ..."); undefined while running */
  ended: string | undefined;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
    private readonly log: WriteStream,
  ) {
    this.exited = new Promise((resolve) => {
      const done = (why: string) => {
        this.ended ??= why;
        resolve();
      };
      // A spawn failure (ENOENT) emits 'error' and may never emit 'exit'.
      child.once("error", (err) => {
        if (child.pid === undefined) done(`failed to start: ${err.message}`);
        this.log.end();
      });
      child.once("exit", (code, signal) => done(`exited (${signal ?? code})`));
    });
    // 'close' comes after 'exit', once the last output has been read from the pipes.
    child.once("close", () => this.log.end());
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.ended === undefined && this.child.pid !== undefined;
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The reason it ended and the last lines of its log, for error messages. */
  async describeEnd(): Promise<string> {
    const text = await readFile(this.logFile, "utf8").catch(() => "");
    const tail = text.trimEnd().split("\n").slice(-LOG_TAIL_LINES).join("\n");
    return `${this.name} ${this.ended ?? "is running"}${tail ? `; last lines of ${this.logFile}:\n${tail}` : ""}`;
  }
}

/** Every process started here, in start order, killed on exit unless stopped before. */
export class ProcessSet {
  readonly all: ManagedProcess[] = [];
  private readonly onExit = () => this.killSync("SIGKILL");

  constructor() {
    process.once("exit", this.onExit);
  }

  /** Opens (truncates) the log file; `start` gets the stream for stdout and stderr. */
  start(name: string, logFile: string, start: (log: WriteStream) => ChildProcess): ManagedProcess {
    const log = createWriteStream(logFile, { flags: "w" });
    const managed = new ManagedProcess(name, start(log), logFile, log);
    this.all.push(managed);
    return managed;
  }

  /** Spawns a command with stdout and stderr appended to the log. */
  spawn(name: string, logFile: string, command: string, args: string[], env: NodeJS.ProcessEnv): ManagedProcess {
    return this.start(name, logFile, (log) => {
      const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.pipe(log, { end: false });
      child.stderr?.pipe(log, { end: false });
      return child;
    });
  }

  async stop(which: readonly ManagedProcess[], graceMs: number): Promise<void> {
    await Promise.all(which.map((p) => p.stop(graceMs)));
  }

  kill(which: readonly ManagedProcess[], signal: NodeJS.Signals): void {
    for (const p of which) if (p.running) p.child.kill(signal);
  }

  killSync(signal: NodeJS.Signals): void {
    this.kill(this.all, signal);
  }

  /** After every process has stopped: no exit hook left behind. */
  dispose(): void {
    process.off("exit", this.onExit);
  }
}
