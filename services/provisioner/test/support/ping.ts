import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * One ping (a one-second wait for the answer) from inside the namespace, from `source` (an address
 * or interface) when given; busybox's ping where iputils is not installed.
 */
export async function pingOnce(netns: string, address: string, source?: string): Promise<boolean> {
  const from = source ? ["-I", source] : [];
  for (const ping of [["ping"], ["busybox", "ping"]]) {
    try {
      await run("ip", ["netns", "exec", netns, ...ping, "-c", "1", "-W", "1", ...from, address]);
      return true;
    } catch (error) {
      // ip netns exec reports a missing command with status 255 and "exec of ... failed".
      if (!/exec of/.test(String((error as { stderr?: unknown }).stderr))) return false;
    }
  }
  return false;
}
