// `mesh creds --out DIR SERVICE...`: the identities of secure mode. One user
// nkey seed per service (`<service>.nk`), one for control and one for the
// CLI, and `auth.conf`, the nats-server authorization block binding each
// public key to its permissions (local/creds-permissions.ts); for edge sites,
// `leaf-auth.conf` and the leaf link's password `leaf.secret`
// (docs/multi-region.md "Leaf nodes in secure mode").
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { nkeys } from "@nats-io/transport-node";
import bcrypt from "bcryptjs";
import {
  ADMIN_IDENTITY,
  type AuthUser,
  checkIdentity,
  CONTROL_IDENTITY,
  LEAF_IDENTITY,
  permissionsFor,
  renderAuthConf,
  renderLeafAuthConf,
} from "./creds-permissions.ts";

export const AUTH_CONF = "auth.conf";
export const LEAF_AUTH_CONF = "leaf-auth.conf";
export const LEAF_SECRET = `${LEAF_IDENTITY}.secret`;
const SEED_SUFFIX = ".nk";
/** bcrypt's cost for the leaf link's password: nats-server checks it once per leaf connection */
const BCRYPT_COST = 10;

export interface CredsResult {
  dir: string;
  /** every identity in auth.conf, services first (sorted), then control and admin */
  identities: string[];
  /** identities whose key was made by this run */
  created: string[];
  authConf: string;
  /** what an edge site's leaf node includes */
  leafAuthConf: string;
  /** the leaf link's password, which an edge site's leaf remote presents as user `leaf` */
  leafSecret: string;
}

export class CredsError extends Error {
  constructor(
    readonly exitCode: 1 | 2,
    message: string,
  ) {
    super(message);
  }
}

/** The seed file of an identity in `dir`. */
export function seedFile(dir: string, identity: string): string {
  return join(dir, `${identity}${SEED_SUFFIX}`);
}

/**
 * Makes `dir` hold a key for every service given, control and admin, keeping
 * keys already there, and rewrites auth.conf for all of them. Throws
 * CredsError(1) for a bad service name, before writing anything.
 */
export async function writeCreds(dir: string, services: readonly string[]): Promise<CredsResult> {
  const problems = services.map(checkIdentity).filter((p): p is string => p !== undefined);
  if (problems.length) throw new CredsError(1, problems.join("\n"));
  const out = resolve(dir);
  await mkdir(out, { recursive: true, mode: 0o700 });
  const existing = await existingServices(out);
  const all = [...new Set([...existing, ...services])].sort();
  const identities = [...all, CONTROL_IDENTITY, ADMIN_IDENTITY];
  const users: AuthUser[] = [];
  const created: string[] = [];
  for (const identity of identities) {
    const { publicKey, isNew } = await ensureSeed(seedFile(out, identity));
    if (isNew) created.push(identity);
    users.push({ identity, nkey: publicKey, permissions: permissionsFor(identity) });
  }
  const leafSecret = join(out, LEAF_SECRET);
  const leafHash = await bcrypt.hash(await ensureSecret(leafSecret), BCRYPT_COST);
  const authConf = join(out, AUTH_CONF);
  const leafAuthConf = join(out, LEAF_AUTH_CONF);
  // Public keys and a password hash only: readable by a nats-server running as another user.
  await writeAtomically(authConf, renderAuthConf(users, leafHash), 0o644);
  await writeAtomically(leafAuthConf, renderLeafAuthConf(users), 0o644);
  return { dir: out, identities, created, authConf, leafAuthConf, leafSecret };
}

/** Services that already have a seed file in `dir` (files that do not name a service are left alone). */
async function existingServices(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names
    .filter((n) => n.endsWith(SEED_SUFFIX))
    .map((n) => n.slice(0, -SEED_SUFFIX.length))
    .filter((n) => checkIdentity(n) === undefined);
}

/** Reads the user seed in `file`, or creates it (mode 0600) when the file does not exist. */
async function ensureSeed(file: string): Promise<{ publicKey: string; isNew: boolean }> {
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (text !== undefined) {
    const seed = text.split(/\s+/).find((w) => w.startsWith("SU"));
    if (!seed) throw new CredsError(1, `'${file}' exists but holds no user nkey seed; move it away or fix it`);
    try {
      return { publicKey: nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey(), isNew: false };
    } catch (err) {
      throw new CredsError(1, `'${file}': not a valid user nkey seed (${(err as Error).message})`);
    }
  }
  const kp = nkeys.createUser();
  await writeAtomically(file, `${new TextDecoder().decode(kp.getSeed())}\n`, 0o600);
  return { publicKey: kp.getPublicKey(), isNew: true };
}

/** The leaf link's password in `file` (read, or made and written with mode 0600): 32 hex digits from the CSPRNG. */
async function ensureSecret(file: string): Promise<string> {
  try {
    const secret = (await readFile(file, "utf8")).trim();
    if (!/^[0-9a-f]{32,}$/.test(secret)) throw new CredsError(1, `'${file}' exists but holds no leaf link password (32 or more hex digits); move it away or fix it`);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(16).toString("hex");
  await writeAtomically(file, `${secret}\n`, 0o600);
  return secret;
}

/** The leaf link's password, for an edge site's leaf remote (`nats-leaf://leaf:<it>@hub:port`). */
export async function readLeafSecret(dir: string): Promise<string> {
  return (await readFile(join(dir, LEAF_SECRET), "utf8")).trim();
}

/**
 * Readers never see a half-written file; the mode is set before the file
 * appears. The temporary file has an unpredictable name and is created
 * exclusively (`wx`), so nobody can plant a file or a symlink there first.
 */
async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(12).toString("hex")}.tmp`;
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode); // the umask may have removed bits; never added any
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(tmp, file);
}
