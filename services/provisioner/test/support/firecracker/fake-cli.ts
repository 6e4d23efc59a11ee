import { appendFileSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { inRoot, startFakeFirecracker } from "./fake-server.ts";

/**
 * The fake Firecracker as a process, so the firecracker driver's whole life cycle (detached
 * spawn, pid, adoption, the process ending after SendCtrlAltDel) runs in tests without the real
 * binary. Accepts Firecracker's `--api-sock` and `--id` (and ignores its other flags, such as the
 * jailer's `--start-time-us`); `--journal FILE` (a path on the host) appends every request as a
 * JSON line. The guest's console goes to stdout, as Firecracker's does.
 *   node fake-cli.ts --api-sock /run/fc.sock [--id ID] [--journal FILE] [--guest-boot-ms 20]
 * Started by the stand-in jailer (fake-jailer.ts), which cannot chroot, it is told its chroot in
 * FAKE_FIRECRACKER_ROOT and takes the socket's and the boot files' paths inside it.
 */
const { values } = parseArgs({
  options: {
    "api-sock": { type: "string" },
    journal: { type: "string" },
    "guest-boot-ms": { type: "string" },
    id: { type: "string" },
  },
  strict: false,
});
const apiSock = values["api-sock"];
if (typeof apiSock !== "string") {
  process.stderr.write("fake firecracker: --api-sock is required\n");
  process.exit(2);
}
const root = process.env.FAKE_FIRECRACKER_ROOT;
const socketPath = inRoot(root, apiSock);
const journal = typeof values.journal === "string" ? values.journal : undefined;

const end = (code: number): never => {
  rmSync(socketPath, { force: true });
  process.exit(code);
};

await startFakeFirecracker({
  socketPath,
  guestBootMs: Number(values["guest-boot-ms"] ?? 20),
  console: (text) => process.stdout.write(text),
  onGuestShutdown: () => end(0),
  ...(root ? { root } : {}),
  ...(typeof values.id === "string" ? { instanceId: values.id } : {}),
  ...(journal ? { onRequest: (entry) => appendFileSync(journal, `${JSON.stringify(entry)}\n`) } : {}),
});
process.on("SIGTERM", () => end(143));
process.on("SIGINT", () => end(130));
