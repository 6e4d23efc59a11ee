import type { TestProject } from "vitest/node";
import { resolveInfrastructure } from "./infra.ts";
import { sweepStaleStreams } from "./nats.ts";
import { sweepStaleDatabases } from "./postgres.ts";

import "./provided.ts";

/** Runs once per test run: finds the infrastructure (or fails fast saying what to start) and sweeps leftovers. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const infra = await resolveInfrastructure();
  // Said once, so a run's log shows where its data went.
  if (infra.postgres === "embedded")
    process.stderr.write("tests: no local PostgreSQL answers; an embedded one runs\n");
  if (infra.nats === "spawned")
    process.stderr.write("tests: no local NATS answers; a nats-server of the run's own runs\n");
  await Promise.all([sweepStaleDatabases(infra.databaseUrl), sweepStaleStreams(infra.natsUrl)]);
  project.provide("natsUrl", infra.natsUrl);
  project.provide("databaseUrl", infra.databaseUrl);
  return () => infra.stop();
}
