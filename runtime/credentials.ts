import { readFile } from "node:fs/promises";
import { credsAuthenticator, nkeyAuthenticator, type Authenticator } from "@nats-io/transport-node";

/**
 * The credentials every mesh process may be given with `--creds FILE`:
 * a NATS creds file (JWT and seed) or an nkey seed file (`mesh creds` writes
 * `<service>.nk`).
 */
export async function authenticatorFromFile(file: string): Promise<Authenticator> {
  const text = await readFile(file, "utf8");
  if (text.includes("BEGIN NATS USER JWT")) return credsAuthenticator(new TextEncoder().encode(text));
  const seed = text.split(/\s+/).find((word) => word.startsWith("SU"));
  if (!seed) throw new Error(`'${file}' holds neither NATS creds nor a user nkey seed`);
  return nkeyAuthenticator(new TextEncoder().encode(seed));
}
