// Streams in secure mode (issue 11): identities from `mesh creds`, real
// sidecars, a real nats-server. A third service holding its own key tries to
// read another pair's stream and to inject chunks into it, in both
// directions. It is given the stream's subjects by the server's own trace log,
// the most it could ever learn, so the verdicts rest on permissions and on the
// channel's sender check, not on secrecy. Barriers: the sidecar's log line
// that it ignored the forged chunk, and the server's refusal of the rest.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { type CredsResult, seedFile, writeCreds } from "../local/creds.ts";
import { StreamWire } from "../schemas/index.ts";
import { startStreamingApp } from "./helpers/apps.ts";
import { tempDir } from "./helpers/cleanup.ts";
import { connectAs } from "./helpers/secure.ts";
import { startTestControl } from "./helpers/control.ts";
import { captureLogs, type CapturedLogs } from "./helpers/logs.ts";
import { eventually, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let creds: CredsResult;
let clientPort: number;
let clientLogs: CapturedLogs;
let pricingLogs: CapturedLogs;
let attacker: { nc: NatsConnection; errors: string[] };

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const seed = (identity: string) => seedFile(creds.dir, identity);

/** What the app in front of pricing does with a request; set per test. */
let appHandler: Parameters<typeof startStreamingApp>[0] = (_req, res) => void res.end();

before(async () => {
  const dir = await tempDir("natsmesh-stream-secure-");
  creds = await writeCreds(join(dir, "creds"), ["client", "pricing", "orders"]);
  // The server traces every message it routes: the attacker's best case is knowing every subject.
  const trace = join(dir, "trace.conf");
  await writeFile(trace, "trace: true\n");
  nats = await startNats({ include: [creds.authConf, trace] });
  await startTestControl(nats.urls, undefined, { creds: seed("control") });
  const app = await startStreamingApp((req, res) => appHandler(req, res));
  pricingLogs = captureLogs();
  await startTestSidecar({ service: "pricing", app: app.url, nats: nats.urls, creds: seed("pricing") }, pricingLogs.logger);
  clientLogs = captureLogs();
  clientPort = (await startTestSidecar({ service: "client", nats: nats.urls, creds: seed("client") }, clientLogs.logger)).outbound.port;
  attacker = await connectAs(nats.urls, creds.dir, "orders");
});

/** The stream inbox `_INBOX.<owner>.<token>` that `sender` sends chunks to, as the server's trace shows it. */
async function streamInboxSeen(owner: string, sender: string): Promise<string> {
  const pattern = new RegExp(`PUB (_INBOX\\.${owner}\\.[A-Za-z0-9_-]{22})\\.${sender} `, "g");
  let found: string | undefined;
  await eventually(async () => {
    const log = await readFile(nats.servers[0]!.logFile, "utf8");
    found = [...log.matchAll(pattern)].at(-1)?.[1];
    return found !== undefined;
  });
  return found!;
}

const violation = (subject: string) => new RegExp(`Permissions Violation for (Publish|Subscription) to "${subject.replace(/[.$*>]/g, "\\$&")}"`);

/** The attacker's attempts on the stream inbox `inbox`, whose legitimate sender is `sender`. */
async function attack(inbox: string, sender: string, logs: CapturedLogs): Promise<void> {
  // It cannot listen: not to the inbox, not to the owner's whole inbox space.
  for (const subject of [`${inbox}.${sender}`, `${inbox}.>`, `${inbox.split(".").slice(0, 2).join(".")}.>`]) {
    const ended = await attacker.nc.subscribe(subject).closed;
    assert.match(String((ended as Error | undefined)?.message), violation(subject));
  }
  // It cannot speak as the legitimate sender.
  const chunk = headers();
  chunk.set(StreamWire.seq, "2");
  attacker.nc.publish(`${inbox}.${sender}`, "INJECTED", { headers: chunk });
  await eventually(async () => attacker.errors.some((e) => violation(`${inbox}.${sender}`).test(e)));
  // As itself it may publish there; the owner ignores it and says so.
  for (const seq of ["1", "2", "3"]) {
    const forged = headers();
    forged.set(StreamWire.seq, seq);
    attacker.nc.publish(`${inbox}.orders`, "INJECTED", { headers: forged });
  }
  const ended = headers();
  ended.set(StreamWire.end, "1");
  attacker.nc.publish(`${inbox}.orders`, "", { headers: ended });
  await eventually(async () => logs.lines.filter((l) => l.msg === "ignored a message from another service than expected" && l.sender === "orders").length >= 4);
}

describe("a third service against a stream in secure mode", () => {
  test("download: it can neither read nor inject; the caller's app gets exactly what the provider's app wrote", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const first = randomBytes(MiB);
    const second = randomBytes(MiB);
    appHandler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.write(first);
      void released.then(() => res.end(second));
    };
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: clientPort, path: "/export", headers: { host: "pricing" }, agent: false }, resolve);
      req.once("error", reject);
      req.end();
    });
    assert.equal(res.statusCode, 200);
    const got: Buffer[] = [];
    res.on("data", (c: Buffer) => got.push(c));
    const done = new Promise<string>((resolve) => {
      res.once("end", () => resolve("end"));
      res.once("aborted", () => resolve("aborted"));
      res.once("error", () => resolve("aborted"));
    });
    await attack(await streamInboxSeen("client", "pricing"), "pricing", clientLogs);
    release();
    assert.equal(await done, "end");
    assert.equal(sha(Buffer.concat(got)), sha(Buffer.concat([first, second])));
  });

  test("upload: it can neither read nor inject; the provider's app gets exactly what the caller's app sent", async () => {
    let arrived!: () => void;
    const firstArrived = new Promise<void>((r) => (arrived = r));
    const received = new Promise<Buffer>((resolve) => {
      appHandler = (req, res) => {
        const parts: Buffer[] = [];
        req.on("data", (c: Buffer) => (parts.push(c), arrived()));
        req.once("end", () => (resolve(Buffer.concat(parts)), res.end("stored")));
      };
    });
    const first = randomBytes(MiB);
    const second = randomBytes(MiB);
    const req = httpRequest({ host: "127.0.0.1", port: clientPort, path: "/import", method: "POST", headers: { host: "pricing", "transfer-encoding": "chunked" }, agent: false });
    const answered = new Promise<IncomingMessage>((resolve, reject) => (req.once("response", resolve), req.once("error", reject)));
    req.write(first);
    await firstArrived;
    await attack(await streamInboxSeen("pricing", "client"), "client", pricingLogs);
    req.end(second);
    assert.equal((await answered).statusCode, 200);
    assert.equal(sha(await received), sha(Buffer.concat([first, second])));
  });
});
