import { readFile } from "node:fs/promises";

/** The host CPU's clock in kHz from /proc/cpuinfo (its TSC rate on these machines), if known. */
export async function hostTscKhz(): Promise<number | undefined> {
  try {
    const info = await readFile("/proc/cpuinfo", "utf8");
    const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(info)?.[1];
    const khz = mhz ? Math.round(Number(mhz) * 1000) : Number.NaN;
    return Number.isFinite(khz) && khz > 0 ? khz : undefined;
  } catch {
    return undefined;
  }
}
