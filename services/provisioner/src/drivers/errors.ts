/** Where a boot stopped: the agent reports it in VmBootFailed.step. */
export type BootStep = "prepare" | "network" | "spawn" | "control" | "configure" | "start" | "readiness";

/** The boot did not reach the next step before its deadline. */
export class BootTimeout extends Error {
  override readonly name = "BootTimeout";
  readonly step: BootStep;
  readonly consoleTail: string;
  constructor(step: BootStep, timeoutMs: number, consoleTail = "") {
    super(`boot timed out at step "${step}" after ${timeoutMs} ms`);
    this.step = step;
    this.consoleTail = consoleTail;
  }
}

/** The boot failed for a known reason; `consoleTail` holds the end of the VM's console (and hypervisor errors). */
export class BootFailed extends Error {
  override readonly name = "BootFailed";
  readonly step: BootStep;
  readonly consoleTail: string;
  constructor(step: BootStep, reason: string, consoleTail = "") {
    super(`boot failed at step "${step}": ${reason}`);
    this.step = step;
    this.consoleTail = consoleTail;
  }
}

/** The record handed to a driver is not one of its instances, or is malformed. */
export class InvalidInstance extends Error {
  override readonly name = "InvalidInstance";
}

/** A driver cannot run on this machine (binary or guest missing, no privilege). */
export class DriverUnavailable extends Error {
  override readonly name = "DriverUnavailable";
}
