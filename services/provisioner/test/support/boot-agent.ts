import type { BootSpec } from "../../src/drivers/driver.ts";
import { QemuDriver, type QemuDriverOptions } from "../../src/drivers/qemu/driver.ts";

/**
 * A stand-in agent for the adoption test: boots one VM with the qemu driver, prints
 * `RECORD <instance json>`, then idles until it is killed.
 *   node boot-agent.ts '<QemuDriverOptions json>' '<BootSpec json>'
 */
const options = JSON.parse(process.argv[2] ?? "{}") as QemuDriverOptions;
const spec = JSON.parse(process.argv[3] ?? "{}") as BootSpec;
const driver = new QemuDriver(options);
try {
  const instance = await driver.boot(spec);
  process.stdout.write(`RECORD ${JSON.stringify(instance)}\n`);
  setInterval(() => {}, 60_000);
} catch (error) {
  process.stdout.write(`FAILED ${(error as Error).message}\n`);
  process.exit(1);
}
