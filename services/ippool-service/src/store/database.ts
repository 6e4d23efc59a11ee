import pg from "pg";
import { pgCode } from "./sql.ts";

/**
 * Creates the service's database when it is missing, connecting to the server's `postgres`
 * database to do so. Instances starting together may race: "already exists" is success.
 */
export async function ensureDatabase(url: string): Promise<"created" | "existed"> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rows } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rows.length > 0) return "existed";
    await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    return "created";
  } catch (error) {
    // 42P04 duplicate_database; 23505 when two CREATE DATABASE commit at once.
    if (pgCode(error) === "42P04" || pgCode(error) === "23505") return "existed";
    throw error;
  } finally {
    await client.end();
  }
}
