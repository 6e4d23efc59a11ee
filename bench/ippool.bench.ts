/**
 * IP pool allocation cost as a pool fills. Four /16 pools (range .0.2–.255.254: 65,533 addresses
 * each; a /16 has 65,534 hosts and the gateway takes one) are brought to 10%, 50%, 90% and 99% full,
 * then allocations are timed in rounds that go round the four pools, so that the noise of a shared
 * machine falls on every level alike; each level reports its median round.
 *
 * An allocation is the service's command handler on its event store, as in production minus NATS:
 * inbox row, VM lock, pool lock, next free address, IpAllocated appended with its outbox row, read
 * model projected, commit; several at once, as the instances of the service would run them.
 *
 * The pools are filled in bulk by SQL (the rows allocations would have written: the cursor moves and
 * the allocations table grows), which keeps the run well under a minute.
 * The aim: 99% full costs no more than 1.5× the 10% figure.
 *
 * node_modules/.bin/node bench/ippool.bench.ts
 */
import { randomBytes, randomUUID } from "node:crypto";
import { names as namesOf } from "@mikrom/contracts";
import { sql } from "kysely";
import pg from "pg";
import { handleCommand } from "../services/ippool-service/src/handlers/commands.ts";
import { openIppoolStore } from "../services/ippool-service/src/store/event-store.ts";

const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const LEVELS = [10, 50, 90, 99];
const SIZE = 65_533;
const ROUNDS = 12;
const PER_ROUND = 50; // 12 × 50 fits in what is left of a pool 99% full (655)
const CONCURRENCY = 8;

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

const dbName = `bench_ippool_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const names = namesOf("bench");
const store = await openIppoolStore({
  databaseUrl: withDatabase(serverUrl, dbName),
  names,
  poolSize: CONCURRENCY,
});
const poolOf = (level: number) => ({
  name: `full-${level}`,
  poolId: `pool-${(0xb000 + level).toString(16).padStart(8, "0")}`,
});

let vmCounter = 0;
async function allocateOne(pool: string): Promise<void> {
  const vmId = `srv-${(vmCounter++).toString(16).padStart(8, "0")}`;
  const outcome = await handleCommand(store, randomUUID(), {
    type: "AllocateIp",
    data: { vmId, pool },
  });
  const [event] = outcome.duplicate || outcome.result.outcome === "refused" ? [] : outcome.result.events;
  if (event?.type !== "IpAllocated")
    throw new Error(`allocation in ${pool} failed: ${JSON.stringify(event)}`);
}

/** `count` allocations in one pool, CONCURRENCY at a time; returns allocations per second. */
async function allocateMany(pool: string, count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      next++;
      await allocateOne(pool);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return count / ((performance.now() - started) / 1000);
}

/** Hands out the first `count` addresses of a pool by writing the rows allocations would write. */
async function bulkFill(poolId: string, count: number): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await sql`
      INSERT INTO ippool_allocations (pool_id, vm_id, address, allocated_at)
      SELECT ${poolId}, 'bulk-' || ${poolId} || '-' || g, p.range_start + g, now()
        FROM ippool_pools p, generate_series(0, ${count}::int - 1) g WHERE p.pool_id = ${poolId}`.execute(
      trx,
    );
    await sql`UPDATE ippool_pools SET next_offset = ${count}, allocated = ${count} WHERE pool_id = ${poolId}`.execute(
      trx,
    );
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  for (const [i, level] of LEVELS.entries()) {
    const { name, poolId } = poolOf(level);
    await handleCommand(store, randomUUID(), {
      type: "CreatePool",
      data: {
        poolId,
        name,
        cidr: `10.${100 + i}.0.0/16`,
        gateway: `10.${100 + i}.0.1`,
        rangeStart: `10.${100 + i}.0.2`,
        rangeEnd: `10.${100 + i}.255.254`,
        description: null,
      },
    });
    await bulkFill(poolId, Math.floor((SIZE * level) / 100));
  }
  await sql`VACUUM ANALYZE`.execute(store.db);
  await allocateMany(poolOf(10).name, 200); // warm up connections and plans

  const rates = new Map<number, number[]>(LEVELS.map((l) => [l, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const level of LEVELS) rates.get(level)!.push(await allocateMany(poolOf(level).name, PER_ROUND));
  }
  const base = median(rates.get(10)!);
  process.stdout.write(
    `ippool allocation through the command handler and event store (no NATS); /16 pools of ${SIZE.toLocaleString("en")} ` +
      `addresses; ${CONCURRENCY} concurrent; median of ${ROUNDS} rounds of ${PER_ROUND} per level\n`,
  );
  process.stdout.write("full   alloc/s   cost vs 10%   rounds (alloc/s)\n");
  for (const level of LEVELS) {
    const r = rates.get(level)!;
    const m = median(r);
    process.stdout.write(
      `${`${level}%`.padEnd(6)} ${m.toFixed(0).padStart(7)}   ${`${(base / m).toFixed(2)}×`.padStart(11)}   ${r.map((x) => x.toFixed(0)).join(" ")}\n`,
    );
  }
} finally {
  await store.close();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
}
