// A large download, measured in the same run as the load scenarios (issue 11):
// TRANSFER_BYTES from the echo app's /bytes/<n>, once directly and once
// through a caller sidecar, NATS and a provider sidecar, read as fast as the
// client can. MB/s for each, and both sidecars' RSS before and at peak
// (sampled every RSS_SAMPLE_MS) to show memory stays flat whatever the size.
import { request } from "undici";
import { rssMiB } from "./procs.ts";
import { type BenchEnv, startSidecar } from "./scenarios.ts";

export const TRANSFER_BYTES = Number(process.env.BENCH_TRANSFER_MIB ?? 256) * 1024 * 1024;
const RSS_SAMPLE_MS = 100;
const SERVICE = "bench-transfer";

export interface TransferRow {
  path: "direct" | "mesh";
  seconds: number;
  mbPerSecond: number;
  /** RSS of the caller and provider sidecars, before the download and at its peak (MiB) */
  rss?: { callerBefore: number; callerPeak: number; providerBefore: number; providerPeak: number };
}

export interface TransferResult {
  bytes: number;
  rows: TransferRow[];
}

/** Reads the whole body of GET `url` (Host `host`), counting bytes; the seconds it took. */
async function download(url: string, host?: string): Promise<number> {
  const t0 = performance.now();
  const res = await request(url, { headers: host ? { host } : {}, bodyTimeout: 0, headersTimeout: 30_000 });
  if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode}: ${await res.body.text()}`);
  let got = 0;
  for await (const chunk of res.body) got += (chunk as Buffer).length;
  if (got !== TRANSFER_BYTES) throw new Error(`${url}: ${got} bytes, expected ${TRANSFER_BYTES}`);
  return (performance.now() - t0) / 1000;
}

export async function measureTransfer(env: BenchEnv, say: (line: string) => void): Promise<TransferResult> {
  const path = `/bytes/${TRANSFER_BYTES}`;
  const rows: TransferRow[] = [];
  const direct = await download(env.appOrigin + path);
  rows.push({ path: "direct", seconds: direct, mbPerSecond: TRANSFER_BYTES / 1e6 / direct });
  say(`  direct: ${(TRANSFER_BYTES / 1e6 / direct).toFixed(0)} MB/s`);

  const provider = await startSidecar(env, { role: "transfer provider", service: SERVICE, app: env.appOrigin });
  const caller = await startSidecar(env, { role: "transfer caller", service: "transfer-client" });
  try {
    const before = { caller: (await rssMiB(caller.child.pid)) ?? 0, provider: (await rssMiB(provider.child.pid)) ?? 0 };
    const peak = { ...before };
    const sampler = setInterval(async () => {
      peak.caller = Math.max(peak.caller, (await rssMiB(caller.child.pid)) ?? 0);
      peak.provider = Math.max(peak.provider, (await rssMiB(provider.child.pid)) ?? 0);
    }, RSS_SAMPLE_MS);
    try {
      const seconds = await download(`http://${caller.listen}${path}`, SERVICE);
      rows.push({
        path: "mesh",
        seconds,
        mbPerSecond: TRANSFER_BYTES / 1e6 / seconds,
        rss: { callerBefore: before.caller, callerPeak: peak.caller, providerBefore: before.provider, providerPeak: peak.provider },
      });
      say(`  mesh: ${(TRANSFER_BYTES / 1e6 / seconds).toFixed(0)} MB/s`);
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await caller.child.stop();
    await provider.child.stop();
  }
  return { bytes: TRANSFER_BYTES, rows };
}

export function transferTable(t: TransferResult): string {
  const direct = t.rows.find((r) => r.path === "direct");
  const mib = (v: number) => v.toFixed(1);
  const lines = [
    `large download: ${t.bytes / 1024 / 1024} MiB, one client, read as fast as it can`,
    "| path | seconds | MB/s | vs direct | caller sidecar RSS before → peak (MiB) | provider sidecar RSS before → peak (MiB) |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of t.rows) {
    const ratio = direct ? (r.mbPerSecond / direct.mbPerSecond).toFixed(2) : "-";
    const rss = r.rss ? [`${mib(r.rss.callerBefore)} → ${mib(r.rss.callerPeak)}`, `${mib(r.rss.providerBefore)} → ${mib(r.rss.providerPeak)}`] : ["-", "-"];
    lines.push(`| ${r.path} | ${r.seconds.toFixed(2)} | ${r.mbPerSecond.toFixed(0)} | ${ratio} | ${rss.join(" | ")} |`);
  }
  return lines.join("\n");
}
