// `npm run bench`: every scenario (bench/scenarios.ts) at every concurrency,
// driven by one load generator process (bench/load.ts) against one echo app,
// one nats-server and one mesh control; then the sidecar start-up table
// (bench/startup.ts). Every ratio is to the `floor` scenario of the same run.
// Prints markdown tables and saves bench/results/<timestamp>.json. Timing
// lives here, never in tests.
//
// Env: BENCH_DURATION_S (5), BENCH_WARMUP_S (1), BENCH_CONCURRENCY ("1,32"),
// BENCH_ROUNDS (1; the scenario list runs this many times, each round one scenario further on,
// each round's ratios to its own floor),
// BENCH_PROFILE=1 (sidecars and peers under --cpu-prof, profiles in bench/results/profiles/),
// BENCH_SCENARIOS (comma-separated names, `startup` for the start-up table; default all),
// BENCH_SIDECAR_NODE_FLAGS (node flags and NAME=value environment of every sidecar),
// BENCH_MESH_VARIANTS (`;`-separated launches, each a `mesh [...]` row and a start-up row; bench/scenarios.ts).
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadSpec } from "./load.ts";
import { startBenchNats, type BenchNats } from "./nats.ts";
import { addRatios, type Cell, type CpuColumn, cpuRatioTable, cpuTable, errorLines, mainTable, roundsTable, type Side, sidesLegend, startupTable } from "./report.ts";
import { cleanup, cpuSeconds, installSignalHandlers, rssMiB, runLoadGenerator, wasInterrupted } from "./procs.ts";
import { BASELINE, type BenchEnv, type Deployment, MESH_VARIANTS, SCENARIOS, type Scenario, startControl, startEchoApp } from "./scenarios.ts";
import { measureSidecarStartup, type StartupResult } from "./startup.ts";
import { measureTransfer, TRANSFER_BYTES, type TransferResult, transferTable } from "./transfer.ts";

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const REPO_DIR = join(BENCH_DIR, "..");
const RESULTS_DIR = join(BENCH_DIR, "results");
/** RSS is sampled this often during a measured window (ms) */
const RSS_SAMPLE_MS = 250;

interface Settings {
  durationS: number;
  warmupS: number;
  concurrencies: number[];
  /** times the whole scenario list runs, each round against its own floor */
  rounds: number;
  profile: boolean;
  /** a request slower than this counts as an error (ms) */
  requestTimeoutMs: number;
}

function settingsFromEnv(): Settings {
  const num = (name: string, fallback: number): number => {
    const raw = process.env[name];
    const n = raw ? Number(raw) : fallback;
    if (!(n >= 0)) throw new Error(`${name}='${raw}' is not a non-negative number`);
    return n;
  };
  const concurrencies = (process.env.BENCH_CONCURRENCY || "1,32").split(",").map((s) => Number(s.trim()));
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`BENCH_CONCURRENCY='${process.env.BENCH_CONCURRENCY}' is not a list of positive integers`);
  const rounds = num("BENCH_ROUNDS", 1);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`BENCH_ROUNDS='${process.env.BENCH_ROUNDS}' is not a positive integer`);
  return { durationS: num("BENCH_DURATION_S", 5), warmupS: num("BENCH_WARMUP_S", 1), concurrencies, rounds, profile: process.env.BENCH_PROFILE === "1", requestTimeoutMs: 10_000 };
}

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);
/** the BENCH_SCENARIOS name of the sidecar start-up table */
const STARTUP = "startup";
/** BENCH_SCENARIOS name of the large-download table (bench/transfer.ts) */
const TRANSFER = "transfer";


/** The run's shared processes; a cell counts each only when it is on the scenario's path. */
interface Shared {
  app: number;
  nats: number | undefined;
  control: number | undefined;
}

/** Processes whose CPU a cell accounts, by report column. */
type Watched = Array<{ name: CpuColumn; pid: number }>;
/** Processes whose RSS a cell samples, by side. */
type Sides = Array<{ side: Side; pid: number }>;

/**
 * CPU and RSS over the load generator's measured window: CPU time of every
 * watched process at both edges, RSS of both sides every RSS_SAMPLE_MS and at the end.
 */
class WindowSampler {
  readonly rss: Cell["rssMiB"];
  #cpuStart: Promise<Map<CpuColumn, number | undefined>> | undefined;
  #cpuEnd: Promise<Map<CpuColumn, number | undefined>> | undefined;
  #rssEnd: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly watched: Watched,
    private readonly sides: Sides,
  ) {
    this.rss = Object.fromEntries(sides.map((s) => [s.side, { end: undefined, max: undefined }]));
  }

  start(): void {
    this.#cpuStart = this.#cpu();
    void this.#sampleRss(false);
    this.#timer = setInterval(() => void this.#sampleRss(false), RSS_SAMPLE_MS);
  }

  end(): void {
    clearInterval(this.#timer);
    this.#cpuEnd = this.#cpu();
    this.#rssEnd = this.#sampleRss(true);
  }

  /** CPU seconds each watched process used in the window; undefined when a sample is missing. */
  async cpuUsed(): Promise<Map<CpuColumn, number | undefined>> {
    clearInterval(this.#timer);
    const [before, after] = await Promise.all([this.#cpuStart, this.#cpuEnd, this.#rssEnd]);
    return new Map(this.watched.map((w) => {
      const a = after?.get(w.name);
      const b = before?.get(w.name);
      return [w.name, a === undefined || b === undefined ? undefined : a - b];
    }));
  }

  async #cpu(): Promise<Map<CpuColumn, number | undefined>> {
    return new Map(await Promise.all(this.watched.map(async (w) => [w.name, await cpuSeconds(w.pid)] as const)));
  }

  async #sampleRss(atEnd: boolean): Promise<void> {
    for (const s of this.sides) {
      const mib = await rssMiB(s.pid);
      const r = this.rss[s.side]!;
      if (mib === undefined) continue;
      r.max = Math.max(r.max ?? 0, mib);
      if (atEnd) r.end = mib;
    }
  }
}

/** Runs the load generator once against a deployment, sampling the other processes over its measured window. */
async function runCell(scenario: Scenario, dep: Deployment, concurrency: number, settings: Settings, shared: Shared): Promise<Cell> {
  const { target } = scenario;
  const spec: LoadSpec = {
    origin: dep.origin,
    path: target.path,
    headers: { ...target.headers, ...(target.host ? { host: target.host } : {}) },
    concurrency,
    warmupS: settings.warmupS,
    durationS: settings.durationS,
    timeoutMs: settings.requestTimeoutMs,
  };
  const watched: Watched = [];
  const sides: Sides = [];
  if (dep.caller) sides.push({ side: "caller", pid: dep.caller.pid });
  if (dep.provider) sides.push({ side: "provider", pid: dep.provider.pid });
  watched.push(...sides.map((s) => ({ name: s.side, pid: s.pid })));
  // Only scenarios with a caller side cross NATS.
  if (dep.caller && shared.nats) watched.push({ name: "nats-server", pid: shared.nats });
  if (dep.usesApp) watched.push({ name: "app", pid: shared.app });
  if (scenario.needsControl && shared.control) watched.push({ name: "control", pid: shared.control });
  const sampler = new WindowSampler(watched, sides);
  const { result } = await runLoadGenerator(`load generator (${scenario.name}, c=${concurrency})`, spec, (edge) => (edge === "start" ? sampler.start() : sampler.end()));
  const cpuUsed = await sampler.cpuUsed();
  const { requests } = result;
  const perRequestUs = (s: number | undefined) => (s === undefined || requests === 0 ? NaN : (s * 1e6) / requests);
  const cpuUsPerRequest: Cell["cpuUsPerRequest"] = {};
  for (const [name, s] of cpuUsed) cpuUsPerRequest[name] = perRequestUs(s);
  cpuUsPerRequest.system = [...cpuUsed.keys()].reduce((sum, k) => sum + cpuUsPerRequest[k]!, 0);
  // The load generator reports its own CPU: it has exited before /proc could be read at the window's end.
  cpuUsPerRequest["load generator"] = perRequestUs(result.loadgenCpuS);
  const processes: Cell["processes"] = {};
  if (dep.caller) processes.caller = dep.caller.name;
  if (dep.provider) processes.provider = dep.provider.name;
  return { scenario: scenario.name, concurrency, load: result, processes, rssMiB: sampler.rss, cpuUsPerRequest };
}

/** Versions of what the peers ran on, read from bench/peers/node_modules (absent before the first install). */
async function peerVersions(): Promise<Record<string, string | undefined>> {
  const version = async (dir: string) => {
    try {
      return (JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { version?: string }).version;
    } catch {
      return undefined;
    }
  };
  const peers = join(BENCH_DIR, "peers", "node_modules");
  const root = join(REPO_DIR, "node_modules");
  return {
    moleculer: await version(join(peers, "moleculer")),
    "moleculer-web": await version(join(peers, "moleculer-web")),
    nats: await version(join(peers, "nats")),
    "@nats-io/transport-node": await version(join(root, "@nats-io", "transport-node")),
    undici: await version(join(root, "undici")),
  };
}

function git(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => execFile("git", args, { cwd: REPO_DIR }, (err, out) => resolve(err ? undefined : out.trim())));
}

async function main(): Promise<void> {
  installSignalHandlers();
  const settings = settingsFromEnv();
  const startedAt = new Date();
  // ISO 8601 without colons, which some filesystems and tools refuse in file names.
  const stamp = startedAt.toISOString().replaceAll(":", "-");
  const profileRoot = settings.profile ? join(RESULTS_DIR, "profiles", stamp) : undefined;
  say(`${settings.durationS} s per cell after ${settings.warmupS} s warm-up, concurrency ${settings.concurrencies.join(", ")}${profileRoot ? `, profiles in ${profileRoot}` : ""}`);

  // BENCH_SCENARIOS="floor,mesh" runs a subset (e.g. to profile one); `startup` names the start-up table.
  const only = process.env.BENCH_SCENARIOS?.split(",").map((s) => s.trim()).filter(Boolean);
  const known = [...SCENARIOS.map((s) => s.name), STARTUP, TRANSFER];
  const unknown = only?.filter((n) => !known.includes(n)) ?? [];
  if (unknown.length) throw new Error(`BENCH_SCENARIOS: no scenario ${unknown.map((n) => `'${n}'`).join(", ")}; known: ${known.join(", ")}`);
  const selected = SCENARIOS.filter((s) => !only || only.includes(s.name) || (s.variantOf !== undefined && only.includes(s.variantOf)));
  const startup = !only || only.includes(STARTUP);
  if (!selected.some((s) => s.name === BASELINE)) say(`${BASELINE} is not selected, so no ratios`);

  const nats: BenchNats = await startBenchNats(say);
  const app = await startEchoApp();
  say(`nats-server ${nats.version} at ${nats.url} (via ${nats.launcher}); echo app at ${app.origin}`);
  // Sidecars run against a complete mesh: control creates the buckets and the MESH_ACCESS stream they write to.
  const control = selected.some((s) => s.needsControl) || startup || !only || only.includes(TRANSFER) ? await startControl({ natsUrl: nats.url }) : undefined;
  if (control) say(`mesh control running (pid ${control.pid})`);
  const shared: Shared = { app: app.pid, nats: nats.pid, control: control?.pid };

  const cells: Cell[] = [];
  const logs: Record<string, string> = {};
  for (let round = 1; round <= settings.rounds; round++) {
    const tag = settings.rounds > 1 ? ` #${round}` : "";
    // Each round starts one scenario later: what runs first or last in a run (a cold or a tired machine) rotates.
    const shift = (round - 1) % selected.length;
    for (const scenario of [...selected.slice(shift), ...selected.slice(0, shift)]) {
      const env: BenchEnv = { appOrigin: app.origin, natsUrl: nats.url, profileDir: profileRoot && join(profileRoot, `${scenario.name}${tag}`) };
      const dep = await scenario.setup(env);
      try {
        for (const concurrency of settings.concurrencies) {
          say(`${scenario.name}${tag} c=${concurrency}...`);
          const cell = await runCell(scenario, dep, concurrency, settings, shared);
          if (settings.rounds > 1) cell.round = round;
          say(`  ${cell.load.rps.toFixed(0)} req/s, p50 ${cell.load.p50Ms.toFixed(3)} ms, p99 ${cell.load.p99Ms.toFixed(3)} ms, ${cell.load.errors} errors`);
          cells.push(cell);
        }
      } finally {
        await dep.stop(); // graceful, so --cpu-prof profiles get written
      }
      for (const p of [dep.caller, dep.provider]) if (p?.output().trim()) logs[`${scenario.name}${tag}/${p.name}`] = p.output();
    }
  }

  let transferResult: TransferResult | undefined;
  if (!only || only.includes(TRANSFER)) {
    say(`large download (${TRANSFER_BYTES / 1024 / 1024} MiB)...`);
    transferResult = await measureTransfer({ appOrigin: app.origin, natsUrl: nats.url, profileDir: profileRoot && join(profileRoot, TRANSFER) }, say);
  }

  let startupResult: StartupResult | undefined;
  if (startup) {
    say(`sidecar start-up...`);
    startupResult = await measureSidecarStartup({ appOrigin: app.origin, natsUrl: nats.url, profileDir: undefined }, say, MESH_VARIANTS);
  }
  if (control?.output().trim()) logs.control = control.output();

  addRatios(cells, BASELINE);
  const tables = cells.length ? [mainTable(cells, BASELINE), "", cpuTable(cells), "", cpuRatioTable(cells, BASELINE), "", sidesLegend(cells)] : [];
  if (cells.length && settings.rounds > 1) tables.push("", roundsTable(cells, BASELINE));
  if (transferResult) tables.push("", transferTable(transferResult));
  if (startupResult) tables.push("", startupTable(startupResult));
  console.log(`\n${tables.join("\n")}\n`);
  for (const line of errorLines(cells)) console.log(`errors: ${line}`);
  for (const [who, text] of Object.entries(logs)) console.log(`${who} logged:\n${text.trimEnd().split("\n").slice(-10).join("\n")}`);

  const file = await saveResults({ startedAt, stamp, settings, nats, app, cells, startup: startupResult, transfer: transferResult, logs, profileRoot });
  say(`saved ${file}`);
}

interface RunRecord {
  startedAt: Date;
  stamp: string;
  settings: Settings;
  nats: BenchNats;
  app: { bodyBytes: number };
  cells: Cell[];
  startup: StartupResult | undefined;
  transfer: TransferResult | undefined;
  logs: Record<string, string>;
  profileRoot: string | undefined;
}

/** Writes bench/results/<stamp>.json with enough context to compare runs across machines. */
async function saveResults(run: RunRecord): Promise<string> {
  const doc = {
    startedAt: run.startedAt.toISOString(),
    commit: await git(["rev-parse", "HEAD"]),
    node: process.version,
    natsServer: run.nats.version,
    natsLauncher: run.nats.launcher,
    cpu: { model: cpus()[0]?.model, cores: cpus().length },
    kernel: release(),
    settings: {
      ...run.settings,
      appBodyBytes: run.app.bodyBytes,
      sidecarLogLevel: "warn",
      baseline: BASELINE,
      scenarios: SCENARIOS.map((s) => ({ name: s.name, target: s.target, needsControl: s.needsControl ?? false })),
      peers: await peerVersions(),
    },
    cells: run.cells,
    ...(run.startup ? { sidecarStartup: run.startup } : {}),
    ...(run.transfer ? { largeDownload: run.transfer } : {}),
    logs: run.logs,
    ...(run.profileRoot ? { profiles: run.profileRoot } : {}),
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${run.stamp}.json`);
  await writeFile(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}

try {
  await main();
} catch (err) {
  if (!wasInterrupted()) console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
