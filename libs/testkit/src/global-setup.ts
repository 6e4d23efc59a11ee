import type { TestProject } from "vitest/node";
import { resolveInfrastructure } from "./infra.ts";
import { sweepStaleStreams } from "./nats.ts";
import { sweepStaleDatabases } from "./postgres.ts";

import "./provided.ts";

/** Runs once per test run: finds the infrastructure (or fails fast saying what to start) and sweeps leftovers. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const infra = await resolveInfrastructure();
  await Promise.all([sweepStaleDatabases(infra.databaseUrl), sweepStaleStreams(infra.natsUrl)]);
  project.provide("natsUrl", infra.natsUrl);
  project.provide("databaseUrl", infra.databaseUrl);
  return () => infra.stop();
}
