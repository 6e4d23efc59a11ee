/**
 * The first superuser of `npm start`: from MIKROM_ADMIN_EMAIL / MIKROM_ADMIN_PASSWORD when given,
 * else the one kept in `<home>/admin.json`, else a new one whose generated password is written there
 * once (readable by its owner only) before the gateway creates the account, so it is never lost.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";

export interface Admin {
  readonly email: string;
  readonly password: string;
  /** environment: the user's variables; file: kept from an earlier start; new: generated now. */
  readonly source: "environment" | "file" | "new";
}

export const DEFAULT_ADMIN_EMAIL = "admin@mikrom.local";

/** Undefined when the environment names the superuser (the gateway checks both are set). */
export async function adminFor(
  env: Readonly<Record<string, string | undefined>>,
  file: string,
): Promise<Admin | undefined> {
  if (env.MIKROM_ADMIN_EMAIL || env.MIKROM_ADMIN_PASSWORD) return undefined;
  try {
    const kept = JSON.parse(await readFile(file, "utf8")) as { email?: unknown; password?: unknown };
    if (typeof kept.email === "string" && typeof kept.password === "string") {
      return { email: kept.email, password: kept.password, source: "file" };
    }
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") {
      throw new Error(`${file} is not readable as the superuser's credentials (${(error as Error).message})`);
    }
  }
  return { email: DEFAULT_ADMIN_EMAIL, password: randomBytes(12).toString("base64url"), source: "new" };
}

/** Writes a new superuser's credentials, once: an existing file is never overwritten. */
export async function keepAdmin(file: string, admin: Admin): Promise<void> {
  const body = `${JSON.stringify({ email: admin.email, password: admin.password }, null, 2)}\n`;
  await writeFile(file, body, { mode: 0o600, flag: "wx" });
}

export async function forgetAdmin(file: string): Promise<void> {
  await rm(file, { force: true });
}
