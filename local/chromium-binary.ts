// Finds (and on Debian/Ubuntu as root, installs) the Chromium the dashboard's
// browser tests drive with playwright-core (docs/dashboard.md §Tests), the
// way nats-binary.ts provides nats-server: from the environment, PATH or the
// distribution's package, never a browser download.
import { execFile } from "node:child_process";
import { firstExecutable, isDebianLike, onPath } from "./nats-binary.ts";

/** Debian's package puts a wrapper script at /usr/bin/chromium; others name it differently. */
const NAMES = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"];
const PACKAGE_BINS = ["/usr/bin/chromium", "/usr/lib/chromium/chromium", "/snap/bin/chromium"];
const MISSING = "chromium not found: install it (e.g. `apt-get install chromium`) or set CHROMIUM_BIN";

/** Why no browser could be provided. */
export class ChromiumError extends Error {
  override readonly name = "ChromiumError";
}

let found: Promise<string> | undefined;

/** Path of a Chromium: `CHROMIUM_BIN`, else PATH, else Debian's `chromium` package when running as root on Debian/Ubuntu. */
export function ensureChromium(log?: (line: string) => void): Promise<string> {
  found ??= locate(log).catch((err: unknown) => {
    found = undefined;
    throw err;
  });
  return found;
}

async function locate(log?: (line: string) => void): Promise<string> {
  const env = process.env.CHROMIUM_BIN;
  if (env) {
    if (!(await firstExecutable([env]))) throw new ChromiumError(`CHROMIUM_BIN '${env}' is not an executable file`);
    return env;
  }
  for (const name of NAMES) {
    const bin = await onPath(name);
    if (bin) return bin;
  }
  return (await firstExecutable(PACKAGE_BINS)) ?? (await installFromApt(log));
}

async function installFromApt(log?: (line: string) => void): Promise<string> {
  if (process.getuid?.() !== 0 || !(await isDebianLike())) throw new ChromiumError(MISSING);
  log?.("chromium not found; installing Debian package chromium with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update"], env);
  await run("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], env);
  const bin = await firstExecutable(PACKAGE_BINS);
  if (!bin) throw new ChromiumError(`apt-get installed chromium but it is not in ${PACKAGE_BINS.join(", ")}`);
  return bin;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const tail = `${stdout}${stderr}`.trim().split("\n").slice(-5).join(" | ");
      reject(new ChromiumError(`'${cmd} ${args.join(" ")}' failed: ${tail || err.message}`, { cause: err }));
    });
  });
}
