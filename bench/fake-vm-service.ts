/**
 * The gateway tests' vm-service stand-in as a process of its own, for benchmarks of the gateway: in
 * the gateway's process its work (consuming each command, publishing the outcome, acking) would be
 * counted as the gateway's. Prints "ready" once it consumes; stops when its standard input closes.
 *
 * node_modules/.bin/node bench/fake-vm-service.ts <namespace>
 */
import { connect } from "@nats-io/transport-node";
import { FakeVmService } from "../services/api-gateway/test/support/vm-service.ts";

const namespace = process.argv[2];
if (!namespace) throw new Error("usage: fake-vm-service.ts <namespace>");
const nc = await connect({
  servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
  noAsyncTraces: true,
  name: "vm-service stand-in",
});
const service = await FakeVmService.start(nc, namespace);
process.stdout.write("ready\n");
// The bench may be gone when its input closes (it failed): nothing is left to tell.
process.stdout.on("error", () => undefined);
process.stdin.resume();
process.stdin.on("end", async () => {
  await service.stop();
  process.stdout.write(`${service.vms.size}\n`);
  await nc.close();
});
