import { readFile } from "node:fs/promises";

/** The real uid and gid a process runs as, from /proc. */
export async function idsOf(pid: number): Promise<{ uid: number; gid: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return {
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]),
    gid: Number(/^Gid:\s+(\d+)/m.exec(status)?.[1]),
  };
}

/** The real uid a process runs as. */
export async function uidOf(pid: number): Promise<number> {
  return (await idsOf(pid)).uid;
}
