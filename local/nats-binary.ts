// Finds (and on Debian/Ubuntu as root, installs) the nats-server binary that
// `mesh up` and the test suite run. Binaries only ever come from the
// environment, PATH or the distribution's package manager: never downloaded.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { delimiter, join } from "node:path";

/** Oldest supported server: JetStream KV semantics the mesh relies on settled in 2.9. */
export const MIN_NATS_SERVER_VERSION = "2.9.0";

/**
 * Debian's package installs /usr/sbin/nats-server, which is not on a normal
 * user's PATH there; look in these places after PATH.
 */
const PACKAGE_BINS = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
const MISSING =
  "nats-server not found: install nats-server 2.9 or newer (e.g. `apt-get install nats-server`) or set NATS_SERVER_BIN";

export type NatsServerErrorCode =
  | "nats_server_missing"
  | "nats_server_too_old"
  | "nats_server_install_failed"
  | "nats_server_start_failed";

/** Why the NATS data plane could not be provided; tests assert on `code`. */
export class NatsServerError extends Error {
  readonly code: NatsServerErrorCode;
  constructor(code: NatsServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NatsServerError";
    this.code = code;
  }
}

/** Memoized per process: `npm test` runs many files, each asking once. */
let found: Promise<string> | undefined;

/**
 * Path of a usable nats-server (2.9+): `NATS_SERVER_BIN`, else PATH, else
 * Debian's package when running as root on Debian/Ubuntu. Throws a
 * NatsServerError with a one-line message otherwise.
 */
export function ensureNatsServer(log?: (line: string) => void): Promise<string> {
  found ??= locate(log).catch((err: unknown) => {
    found = undefined; // let a later call retry, e.g. after the user installs it
    throw err;
  });
  return found;
}

/** A nats-server already here (NATS_SERVER_BIN, PATH, Debian's path), without installing one; undefined when none. */
export async function findNatsServer(): Promise<string | undefined> {
  return (await fromEnv().catch(() => undefined)) ?? (await onPath("nats-server")) ?? (await firstExecutable(PACKAGE_BINS));
}

async function locate(log?: (line: string) => void): Promise<string> {
  const bin =
    (await fromEnv()) ??
    (await onPath("nats-server")) ??
    (await firstExecutable(PACKAGE_BINS)) ??
    (await installFromApt(log));
  const version = await natsServerVersion(bin);
  log?.(`using nats-server ${version} at ${bin}`);
  return bin;
}

async function fromEnv(): Promise<string | undefined> {
  const bin = process.env.NATS_SERVER_BIN;
  if (!bin) return undefined;
  if (!(await isExecutableFile(bin))) {
    throw new NatsServerError("nats_server_missing", `NATS_SERVER_BIN '${bin}' is not an executable file`);
  }
  return bin;
}

export function onPath(name: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  return firstExecutable(dirs.map((dir) => join(dir, name)));
}

export async function firstExecutable(paths: string[]): Promise<string | undefined> {
  for (const path of paths) {
    if (await isExecutableFile(path)) return path;
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Debian ships nats-server as a package; installing it is the only download we do. */
async function installFromApt(log?: (line: string) => void): Promise<string> {
  if (process.getuid?.() !== 0 || !(await isDebianLike())) {
    throw new NatsServerError("nats_server_missing", MISSING);
  }
  log?.("nats-server not found; installing Debian package nats-server with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await runQuiet("apt-get", ["update"], env);
  await runQuiet("apt-get", ["install", "-y", "nats-server"], env);
  const bin = (await onPath("nats-server")) ?? (await firstExecutable(PACKAGE_BINS));
  if (!bin) {
    const where = `neither PATH nor ${PACKAGE_BINS.join(", ")}`;
    throw new NatsServerError("nats_server_install_failed", `apt-get installed nats-server but it is in ${where}`);
  }
  return bin;
}

export async function isDebianLike(): Promise<boolean> {
  const text = await readFile("/etc/os-release", "utf8").catch(() => "");
  const ids = text
    .split("\n")
    .filter((line) => line.startsWith("ID=") || line.startsWith("ID_LIKE="))
    .map((line) => line.slice(line.indexOf("=") + 1).replaceAll('"', ""))
    .join(" ");
  return /\b(debian|ubuntu)\b/.test(ids);
}

/** Runs a command with its output captured, so apt's progress never floods the terminal. */
function runQuiet(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const tail = `${stdout}${stderr}`.trim().split("\n").slice(-5).join(" | ");
      const what = `${cmd} ${args.join(" ")}`;
      const message = `'${what}' failed: ${tail || err.message}`;
      reject(new NatsServerError("nats_server_install_failed", message, { cause: err }));
    });
  });
}

/** Version of a nats-server binary ("2.9.10"); rejects binaries older than 2.9. */
export async function natsServerVersion(bin: string): Promise<string> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(bin, ["--version"], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) {
        const msg = `cannot run '${bin} --version': ${err.message.split("\n")[0]}`;
        return reject(new NatsServerError("nats_server_missing", msg, { cause: err }));
      }
      resolve(`${stdout}${stderr}`);
    });
  });
  // Output looks like "nats-server: v2.9.10"; pre-releases add "-beta.1" etc.
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(out);
  if (!match) {
    throw new NatsServerError("nats_server_missing", `cannot parse version of '${bin}' from '${out.trim().split("\n")[0]}'`);
  }
  const [, major, minor, patch] = match.map(Number) as [number, number, number, number];
  const version = `${major}.${minor}.${patch}`;
  if (major < 2 || (major === 2 && minor < 9)) {
    throw new NatsServerError(
      "nats_server_too_old",
      `nats-server ${version} at '${bin}' is too old: natsmesh needs ${MIN_NATS_SERVER_VERSION.slice(0, 3)} or newer`,
    );
  }
  return version;
}
