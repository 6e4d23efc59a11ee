export { chooseDriver, type DriverChoice } from "./choose.ts";
export { DriverConfig, driverConfigFromEnv } from "./config.ts";
export {
  type AdoptResult,
  type BootOptions,
  BootSpec,
  DEFAULT_CONSOLE_BYTES,
  type Driver,
  DriverName,
  Instance,
  type InstanceStatus,
} from "./driver.ts";
export { BootFailed, type BootStep, BootTimeout, DriverUnavailable, InvalidInstance } from "./errors.ts";
export { FakeDriver, type FakeDriverOptions } from "./fake/driver.ts";
export { FirecrackerDriver, type FirecrackerDriverOptions } from "./firecracker/driver.ts";
export {
  addNetns,
  canManageNetwork,
  createTap,
  deleteNetns,
  ensureBridge,
  linkExists,
  NetworkError,
  removeTap,
  tapNameFor,
} from "./network.ts";
export { QemuDriver, type QemuDriverOptions } from "./qemu/driver.ts";
export { buildGuest, defaultGuestDir, findGuest, type Guest } from "./qemu/guest.ts";
export { type KvmVerdict, probeKvm } from "./qemu/kvm-probe.ts";
