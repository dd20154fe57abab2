// `npm run bench:fastpath`: where the one-message fast path stops paying
// (issue 11, docs/architecture.md §15). The same POST bodies, one at a time,
// through two sidecar pairs in one run: one that sends any body up to 4 MiB
// as a single NATS message, one that streams every body over 1 KiB in
// chunks. Median latency and sidecar CPU per request, per body size. The
// default threshold (fastPathMaxBytes) is the size up to which one message
// is no worse than a stream.
import { Pool } from "undici";
import { startBenchNats } from "./nats.ts";
import { cleanup, cpuSeconds, installSignalHandlers } from "./procs.ts";
import { startControl, startEchoApp, startSidecar } from "./scenarios.ts";

const SIZES = [4, 16, 64, 256, 1024].map((k) => k * 1024);
const REQUESTS = Number(process.env.BENCH_FASTPATH_REQUESTS ?? 200);
const MODES = { message: ["--fast-path-max-bytes", String(4 * 1024 * 1024)], streamed: ["--fast-path-max-bytes", "1024"] } as const;

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function main(): Promise<void> {
  installSignalHandlers();
  const nats = await startBenchNats(say);
  const env = { appOrigin: (await startEchoApp()).origin, natsUrl: nats.url, profileDir: undefined };
  await startControl(env);
  const rows: string[] = ["| body | one message: median ms | streamed: median ms | one message: sidecar CPU µs/req | streamed: sidecar CPU µs/req |", "| ---: | ---: | ---: | ---: | ---: |"];
  const pairs = await Promise.all(
    Object.entries(MODES).map(async ([mode, flags]) => {
      const provider = await startSidecar(env, { role: `${mode} provider`, service: `fastpath-${mode}`, app: env.appOrigin, flags: [...flags] });
      const caller = await startSidecar(env, { role: `${mode} caller`, service: `fastpath-client-${mode}`, flags: [...flags] });
      return { mode, provider, caller, pool: new Pool(`http://${caller.listen}`, { connections: 1 }) };
    }),
  );
  for (const size of SIZES) {
    const body = Buffer.alloc(size, 0x62);
    const cells: string[] = [];
    const cpu: string[] = [];
    for (const pair of pairs) {
      const times: number[] = [];
      const cpu0 = (await cpuSeconds(pair.caller.child.pid))! + (await cpuSeconds(pair.provider.child.pid))!;
      for (let i = 0; i < REQUESTS; i++) {
        const t0 = performance.now();
        const res = await pair.pool.request({ method: "POST", path: "/echo", headers: { host: `fastpath-${pair.mode}`, "content-length": String(size) }, body });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`${pair.mode} ${size}: status ${res.statusCode}`);
        times.push(performance.now() - t0);
      }
      const cpu1 = (await cpuSeconds(pair.caller.child.pid))! + (await cpuSeconds(pair.provider.child.pid))!;
      times.sort((a, b) => a - b);
      cells.push(times[Math.floor(times.length / 2)]!.toFixed(2));
      cpu.push(((cpu1 - cpu0) * 1e6 / REQUESTS).toFixed(0));
    }
    rows.push(`| ${size / 1024} KiB | ${cells.join(" | ")} | ${cpu.join(" | ")} |`);
    say(rows.at(-1)!);
  }
  for (const p of pairs) await p.pool.close();
  console.log(`\nPOST bodies one at a time, ${REQUESTS} per cell; the echo app drains the body and answers ~100 bytes\n${rows.join("\n")}\n`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
