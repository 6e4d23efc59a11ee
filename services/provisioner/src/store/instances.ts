import type { MetadataInput, Session } from "@mikrom/eventstore";
import type { Kysely } from "kysely";
import type { HeldStatus, HeldVm, Operation } from "../domain/plan.ts";
import { BootSpec, type DriverName, Instance } from "../drivers/driver.ts";
import { type ProvisionerEvent, vmStream } from "./event-store.ts";
import type { ProvisionerTables } from "./tables.ts";

type Db = Kysely<ProvisionerTables>;

function toHeld(row: {
  vm_id: string;
  status: string;
  spec: unknown;
  instance: unknown;
  stream_version: number;
  operation: string | null;
}): HeldVm {
  const instance = row.instance === null ? undefined : Instance.parse(row.instance);
  return {
    vmId: row.vm_id,
    status: row.status as HeldStatus,
    spec: BootSpec.parse(row.spec),
    instance,
    version: row.stream_version,
    operation: (row.operation ?? undefined) as Operation | undefined,
  };
}

/** The VM as this host holds it; `forUpdate` locks the row until the transaction ends. */
export async function loadVm(db: Db, vmId: string, forUpdate = false): Promise<HeldVm | undefined> {
  let query = db
    .selectFrom("instances")
    .select(["vm_id", "status", "spec", "instance", "stream_version", "operation"])
    .where("vm_id", "=", vmId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toHeld(row) : undefined;
}

/** Every VM still on this host (not destroyed). */
export async function listHeld(db: Db): Promise<HeldVm[]> {
  const rows = await db
    .selectFrom("instances")
    .select(["vm_id", "status", "spec", "instance", "stream_version", "operation"])
    .where("status", "<>", "destroyed")
    .orderBy("vm_id")
    .execute();
  return rows.map(toHeld);
}

export interface VmChange {
  readonly vmId: string;
  readonly status: HeldStatus;
  readonly spec: BootSpec;
  /** `null` forgets the record (the driver removed everything). */
  readonly instance: Instance | null;
  /** The command about to act through the driver; a change without it clears the marker. */
  readonly operation?: Operation | undefined;
}

/**
 * Writes the VM's new state and appends its events in one transaction: the events reach the outbox
 * with the state that explains them, so a crash never leaves one without the other. The row lock
 * taken here orders writers of the same VM; the stream version guards against a lost update.
 */
export async function recordVm(
  session: Session<ProvisionerEvent, ProvisionerTables>,
  driver: DriverName,
  change: VmChange,
  events: readonly ProvisionerEvent[],
  metadata?: MetadataInput,
): Promise<HeldVm> {
  const before = await loadVm(session.db, change.vmId, true);
  // Without a row the stream may still hold answers about the VM (a DestroyVm for a VM never here).
  let version = before?.version ?? (await session.readStream(vmStream(change.vmId))).version;
  if (events.length > 0) {
    const appended = await session.append(vmStream(change.vmId), events, {
      expectedVersion: version,
      ...(metadata ? { metadata } : {}),
    });
    version = appended.nextVersion;
  }
  const values = { ...rowValues(driver, change), stream_version: version };
  await session.db
    .insertInto("instances")
    .values({ vm_id: change.vmId, ...values })
    .onConflict((oc) => oc.column("vm_id").doUpdateSet(values))
    .execute();
  const instance = change.instance;
  return {
    vmId: change.vmId,
    status: change.status,
    spec: change.spec,
    instance: instance ?? undefined,
    version,
    operation: change.operation,
  };
}

/** VMs running here, for the heartbeat. */
export async function countRunning(db: Db): Promise<number> {
  const row = await db
    .selectFrom("instances")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("status", "=", "running")
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** The row's columns for a change, all but the stream version. */
function rowValues(driver: DriverName, change: VmChange) {
  const instance = change.instance;
  return {
    status: change.status,
    driver,
    spec: JSON.stringify(change.spec),
    instance: instance === null ? null : JSON.stringify(instance),
    pid: instance?.pid ?? null,
    socket: instance?.qmpSocket ?? instance?.apiSocket ?? null,
    console_log: instance?.consoleLog ?? null,
    operation: change.operation ?? null,
    updated_at: new Date(),
  };
}

/**
 * Marks the command under way before the driver acts (see DriverActions): no events, so one
 * statement instead of recordVm's locked transaction. A row keeps its stream version (the events
 * behind it are unchanged); a new row takes `version`, the stream's. The caller holds the VM's lock
 * in this agent; a writer elsewhere (the watch) orders itself on the row through recordVm.
 */
export async function markVm(db: Db, driver: DriverName, change: VmChange, version: number): Promise<void> {
  const values = rowValues(driver, change);
  await db
    .insertInto("instances")
    .values({ vm_id: change.vmId, ...values, stream_version: version })
    .onConflict((oc) => oc.column("vm_id").doUpdateSet(values))
    .execute();
}
