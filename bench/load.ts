// The load generator, run as its own process so its CPU does not share an
// event loop with the orchestrator. Closed loop: `concurrency` workers each
// send a request, wait for the whole response, and send the next, over one
// keep-alive connection per worker. Warm-up requests are sent but not counted.
//
// Input: one argv argument, a JSON LoadSpec. Output on stdout, one JSON line
// each: {"phase":"measure"} when counting starts, then the LoadResult.
import { Pool } from "undici";

export interface LoadSpec {
  /** origin, e.g. http://127.0.0.1:1234 */
  origin: string;
  path: string;
  headers: Record<string, string>;
  concurrency: number;
  warmupS: number;
  durationS: number;
  /** a request slower than this counts as an error (ms) */
  timeoutMs: number;
}

export interface LoadResult {
  requests: number;
  /** non-2xx answers and failed requests */
  errors: number;
  /** by status (with the mesh-error code when there is one) or by client error code */
  errorKinds: Record<string, number>;
  /** measured window: first counted request sent .. last counted response received (s) */
  elapsedS: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU time the load generator itself used during the measured window (s) */
  loadgenCpuS: number;
}

/** Exact percentile (nearest rank) of sorted samples. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.origin, {
    connections: spec.concurrency,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: spec.timeoutMs,
    bodyTimeout: spec.timeoutMs,
  });
  const start = process.hrtime.bigint();
  const measureFrom = start + BigInt(Math.round(spec.warmupS * 1e9));
  const stopAt = measureFrom + BigInt(Math.round(spec.durationS * 1e9));
  const latenciesMs: number[] = [];
  const errorKinds: Record<string, number> = {};
  let lastEnd = measureFrom;
  let cpuAtMeasure: NodeJS.CpuUsage | undefined;
  const markMeasure = () => {
    cpuAtMeasure = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ phase: "measure" })}\n`);
  };
  const measureTimer = setTimeout(markMeasure, spec.warmupS * 1000);

  const worker = async () => {
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 >= stopAt) return;
      let error: string | undefined;
      try {
        const res = await pool.request({ method: "GET", path: spec.path, headers: spec.headers });
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode > 299) {
          const meshError = res.headers["mesh-error"];
          error = meshError ? `${res.statusCode} ${String(meshError)}` : String(res.statusCode);
        }
      } catch (err) {
        error = (err as { code?: string }).code ?? (err as Error).message;
      }
      const t1 = process.hrtime.bigint();
      if (t0 < measureFrom) continue;
      latenciesMs.push(Number(t1 - t0) / 1e6);
      if (t1 > lastEnd) lastEnd = t1;
      if (error) errorKinds[error] = (errorKinds[error] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  clearTimeout(measureTimer);
  const cpu = process.cpuUsage(cpuAtMeasure);
  await pool.close();

  const sorted = Float64Array.from(latenciesMs).sort();
  const elapsedS = Number(lastEnd - measureFrom) / 1e9;
  const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
  return {
    requests: sorted.length,
    errors,
    errorKinds,
    elapsedS,
    rps: elapsedS > 0 ? sorted.length / elapsedS : 0,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
  };
}

// run.ts imports only the types (erased), so this runs only as a program.
const spec = JSON.parse(process.argv[2] ?? "") as LoadSpec;
process.stdout.write(`${JSON.stringify(await run(spec))}\n`);
