/**
 * A `.env` for docker-compose.yml: a fresh random value for every variable the file requires
 * (`${NAME:?…}`: its secrets, which have no defaults). Run it once before the first `up`:
 *
 *   node_modules/.bin/node deploy/src/compose-env.ts > .env
 *
 * Values are base64url (letters, digits, `-` and `_`), safe inside the URLs that carry the NATS and
 * PostgreSQL passwords; a NATS password begins with a letter (randomNatsPassword says why). PostgreSQL and Grafana take theirs when their volume is first created:
 * changing one later means changing it in the running server too.
 */
import { randomBytes } from "node:crypto";
import { loadCompose, variableUses } from "./compose.ts";
import { randomNatsPassword } from "./nats-permissions.ts";

/** Bytes of randomness per variable: a signing key gets 384 bits, a password 192 (144 for one typed by hand). */
function bytesFor(name: string): number {
  if (name === "JWT_SECRET") return 48;
  if (name === "MIKROM_ADMIN_PASSWORD") return 18;
  return 24;
}

export function composeEnvFile(file: unknown = loadCompose()): string {
  const required = [
    ...new Set(
      variableUses(file)
        .filter((u) => u.operator === ":?")
        .map((u) => u.name),
    ),
  ];
  // NATS passwords begin with a letter: nats-server reads them as configuration (randomNatsPassword).
  const value = (name: string): string =>
    name.startsWith("NATS_PASSWORD_")
      ? randomNatsPassword()
      : randomBytes(bytesFor(name)).toString("base64url");
  const lines = required.sort().map((name) => `${name}=${value(name)}`);
  return [
    "# Secrets for docker-compose.yml, made by deploy/src/compose-env.ts: keep this file to yourself",
    "# (.gitignore and .dockerignore leave it out). MIKROM_ADMIN_PASSWORD logs in admin@mikrom.local.",
    ...lines,
    "",
  ].join("\n");
}

/** `NAME=value` lines, as compose reads a plain .env (comments and blank lines skipped). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) env[match[1] as string] = (match[2] as string).trim();
  }
  return env;
}

if (import.meta.main) process.stdout.write(composeEnvFile());
