import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { startGateway } from "./support/gateway.ts";

const PASSWORD = "correct horse battery";

/** Every row of every table of the gateway's database, as text. */
async function everythingStored(dbUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      "SELECT quote_ident(table_name) AS name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    let all = "";
    for (const { name } of tables) {
      const { rows } = await client.query(`SELECT row_to_json(t)::text AS row FROM ${name} t`);
      all += rows.map((r) => r.row).join("\n");
    }
    return all;
  } finally {
    await client.end();
  }
}

describe("nothing secret at rest that need not be", () => {
  test("no password, access token, refresh token or invitation is stored, whatever Idempotency-Key is sent", async ({
    db,
  }) => {
    const gw = await startGateway(db.url, { config: { registration: "invite" } });
    try {
      const root = await gw.user("root", { superuser: true });
      const secrets: string[] = [PASSWORD];
      const key = (k: string) => ({ "Idempotency-Key": k });

      const invite = await gw.post("/api/v1/auth/invites", {}, { ...root.auth, ...key("invite-1") });
      expect(invite.status).toBe(201);
      const inviteToken: string = (await invite.json()).token;
      secrets.push(inviteToken);

      const registered = await gw.post(
        "/api/v1/auth/register",
        { email: "rest@example.com", password: PASSWORD, invite_token: inviteToken },
        key("register-1"),
      );
      expect(registered.status).toBe(201);
      const reg = await registered.json();
      secrets.push(reg.access_token, reg.refresh_token);

      const login = await (
        await gw.post(
          "/api/v1/auth/login/json",
          { username: "rest@example.com", password: PASSWORD },
          key("login-1"),
        )
      ).json();
      secrets.push(login.access_token, login.refresh_token);

      const refreshed = await gw.post(
        "/api/v1/auth/refresh",
        { refresh_token: login.refresh_token },
        key("refresh-1"),
      );
      expect(refreshed.status).toBe(200);
      const pair = await refreshed.json();
      secrets.push(pair.access_token, pair.refresh_token);

      const stored = await everythingStored(db.url);
      expect(stored).toContain("rest@example.com"); // the dump sees the tables
      for (const secret of secrets) {
        expect(stored).not.toContain(secret);
        // Nor the signature alone: with it and the claims a token is rebuilt.
        const signature = secret.split(".")[2];
        if (signature) expect(stored).not.toContain(signature);
      }
    } finally {
      await gw.close();
    }
  });
});
