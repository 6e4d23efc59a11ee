import { z } from "zod";
import { DriverName } from "./driver.ts";
import { defaultGuestDir } from "./qemu/guest.ts";
import { defaultRunDir } from "./run-dir.ts";

/** Everything the drivers can be told, parsed from the environment by the agent's config.ts. */
export const DriverConfig = z.object({
  /** Unset: the best driver that works here (see choose.ts). */
  driver: DriverName.optional(),
  runDir: z.string().min(1),
  guestDir: z.string().min(1),
  /** qemu acceleration; `auto` probes KVM once (cached) and falls back to TCG. */
  qemuAccel: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  qemuBinary: z.string().default("qemu-system-x86_64"),
  bootTimeoutMs: z.coerce.number().int().positive().optional(),
  /** A cgroup per guest with its CPU and memory (cgroup.ts); `auto`: where the agent may create one. */
  guestCgroups: z.enum(["auto", "on", "off"]).default("auto"),
  /**
   * qemu under a root agent: each guest runs as a uid of its own from this range (guest-users.ts), or
   * `off` (nobody). The default lies above the ranges useradd hands out (accounts up to 60000,
   * subordinate ids 100000-600100000) and below those systemd keeps for containers' and foreign ids.
   */
  guestUids: z
    .string()
    .regex(/^(off|\d+-\d+)$/, "a range like 1900000000-1900065535, or off")
    .refine((text) => {
      const [first = 0, last = 0] = text.split("-").map(Number);
      return text === "off" || (first >= 1000 && last >= first);
    }, "a range of uids from 1000 up, its end not before its start")
    .default("1900000000-1900065535"),
  /** Create each VM's tap on this bridge (needs root). */
  bridge: z.string().optional(),
  /** Each tap sends only from its VM's MAC and address (guest-fence.ts); `auto`: where nftables works. */
  guestFence: z.enum(["auto", "on", "off"]).default("auto"),
  firecrackerBinary: z.string().default("firecracker"),
  /** Run Firecracker through this jailer (firecracker/jail.ts): a chroot and a uid of its own per guest. */
  firecrackerJailer: z.string().optional(),
  /** The jailer's --chroot-base-dir: each VM's chroot is <this>/<firecracker's file name>/<vm id>/root. */
  firecrackerChrootBase: z.string().startsWith("/", "an absolute path").default("/srv/jailer"),
  /** Default: the guest's kernel and initramfs. */
  firecrackerKernel: z.string().optional(),
  firecrackerInitrd: z.string().optional(),
  firecrackerRootfs: z.string().optional(),
  /** Fake driver: boot latency in ms, `50` or a range `20-200`. */
  fakeLatencyMs: z
    .string()
    .regex(/^\d+(-\d+)?$/, "a number of ms or a range like 20-200")
    .default("0")
    .transform((text): number | [number, number] => {
      const [min, max] = text.split("-").map(Number);
      return max === undefined ? min! : [min!, max];
    }),
  fakeFailureRate: z.coerce.number().min(0).max(1).default(0),
});
export type DriverConfig = z.infer<typeof DriverConfig>;

/** The variables the drivers read, by name (MIKROM_DRIVER, MIKROM_RUN_DIR, ...). */
export function driverConfigFromEnv(env: Readonly<Record<string, string | undefined>>): DriverConfig {
  const pick = (name: string): string | undefined => (env[name] === "" ? undefined : env[name]);
  const raw = {
    driver: pick("MIKROM_DRIVER"),
    runDir: pick("MIKROM_RUN_DIR") ?? defaultRunDir(env),
    guestDir: defaultGuestDir(env),
    qemuAccel: pick("MIKROM_QEMU_ACCEL"),
    qemuBinary: pick("MIKROM_QEMU_BINARY"),
    bootTimeoutMs: pick("MIKROM_BOOT_TIMEOUT_MS"),
    guestCgroups: pick("MIKROM_GUEST_CGROUPS"),
    guestUids: pick("MIKROM_GUEST_UIDS"),
    bridge: pick("MIKROM_BRIDGE"),
    guestFence: pick("MIKROM_GUEST_FENCE"),
    firecrackerBinary: pick("MIKROM_FIRECRACKER_BINARY"),
    firecrackerJailer: pick("MIKROM_FIRECRACKER_JAILER"),
    firecrackerChrootBase: pick("MIKROM_FIRECRACKER_CHROOT_BASE"),
    firecrackerKernel: pick("MIKROM_FIRECRACKER_KERNEL"),
    firecrackerInitrd: pick("MIKROM_FIRECRACKER_INITRD"),
    firecrackerRootfs: pick("MIKROM_FIRECRACKER_ROOTFS"),
    fakeLatencyMs: pick("MIKROM_FAKE_LATENCY_MS"),
    fakeFailureRate: pick("MIKROM_FAKE_FAILURE_RATE"),
  };
  const names: Record<string, string> = {
    driver: "MIKROM_DRIVER",
    runDir: "MIKROM_RUN_DIR",
    guestDir: "MIKROM_GUEST_DIR",
    qemuAccel: "MIKROM_QEMU_ACCEL",
    qemuBinary: "MIKROM_QEMU_BINARY",
    bootTimeoutMs: "MIKROM_BOOT_TIMEOUT_MS",
    guestCgroups: "MIKROM_GUEST_CGROUPS",
    guestUids: "MIKROM_GUEST_UIDS",
    bridge: "MIKROM_BRIDGE",
    guestFence: "MIKROM_GUEST_FENCE",
    firecrackerBinary: "MIKROM_FIRECRACKER_BINARY",
    firecrackerJailer: "MIKROM_FIRECRACKER_JAILER",
    firecrackerChrootBase: "MIKROM_FIRECRACKER_CHROOT_BASE",
    firecrackerKernel: "MIKROM_FIRECRACKER_KERNEL",
    firecrackerInitrd: "MIKROM_FIRECRACKER_INITRD",
    firecrackerRootfs: "MIKROM_FIRECRACKER_ROOTFS",
    fakeLatencyMs: "MIKROM_FAKE_LATENCY_MS",
    fakeFailureRate: "MIKROM_FAKE_FAILURE_RATE",
  };
  const parsed = DriverConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      return `${names[key] ?? key}: ${issue.message}`;
    });
    throw new Error(`invalid driver configuration: ${problems.join("; ")}`);
  }
  return parsed.data;
}
