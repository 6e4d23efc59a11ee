import { histogram } from "@mikrom/telemetry";

const bootDuration = histogram("mikrom.provisioner.boot.duration", {
  unit: "s",
  description: "Time the driver took to boot a VM, from the call to a guest ready (or the failure)",
  boundaries: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
});

/** `step`: where a failed boot stopped (the driver's step name, a small fixed set). */
export function recordBoot(driver: string, seconds: number, failedStep?: string): void {
  bootDuration.record(seconds, {
    "mikrom.provisioner.driver": driver,
    "mikrom.outcome": failedStep === undefined ? "success" : "failure",
    ...(failedStep === undefined ? {} : { "mikrom.provisioner.boot.step": failedStep }),
  });
}
