import pg from "pg";

/**
 * Creates the agent's database when it is missing, connecting to the server's `postgres`
 * database to do so. Two starts racing is fine: "already exists" is success.
 */
export async function ensureDatabase(url: string): Promise<"created" | "existed"> {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rows } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rows.length > 0) return "existed";
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    return "created";
  } catch (error) {
    // 42P04 duplicate_database; 23505 when two CREATE DATABASE commit at once.
    const code = (error as { code?: string }).code;
    if (code === "42P04" || code === "23505") return "existed";
    throw error;
  } finally {
    await client.end();
  }
}
