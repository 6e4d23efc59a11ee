import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FirecrackerApiError, firecrackerCall } from "../src/drivers/firecracker/api.ts";
import { type FakeFirecracker, startFakeFirecracker } from "./support/firecracker/fake-server.ts";
import { FIRECRACKER_SPEC_FILE, loadFirecrackerSpec } from "./support/firecracker/spec.ts";

/** The shared reference copy, beside the repository (`../shared/reference`). */
const REFERENCE_SPEC = join(
  import.meta.dirname,
  "..",
  "..",
  "..",
  "..",
  "shared",
  "reference",
  "firecracker-swagger.yaml",
);
/** sha256 of the official v1.16.1 spec (the reference copy's): the copy the fake serves may not drift. */
const OFFICIAL_SHA256 = "a514abec7b29700c5ca8bdaebbb960e4ffb46fe1fd4869094c6c63630a6fa41c";
const spec = loadFirecrackerSpec();

let dir: string;
let socket: string;
let kernel: string;
let fake: FakeFirecracker;
let consoleText: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-fc-"));
  socket = join(dir, "fc.sock");
  kernel = join(dir, "vmlinux");
  await writeFile(kernel, "not really a kernel");
  consoleText = "";
  fake = await startFakeFirecracker({ socketPath: socket, spec, console: (text) => (consoleText += text) });
});
afterEach(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

/** The call's fault, or undefined when it was accepted. */
async function fault(
  method: "GET" | "PUT" | "PATCH",
  path: string,
  body?: unknown,
): Promise<string | undefined> {
  try {
    await firecrackerCall(socket, method, path, body);
    return undefined;
  } catch (error) {
    if (error instanceof FirecrackerApiError) {
      expect(error.status).toBe(400);
      return error.fault;
    }
    throw error;
  }
}

describe("the fake Firecracker's spec", () => {
  it("is the official v1.16.1 spec, the same as the shared reference copy", async () => {
    expect(spec.version).toBe("1.16.1");
    const ours = await readFile(FIRECRACKER_SPEC_FILE);
    expect(createHash("sha256").update(ours).digest("hex")).toBe(OFFICIAL_SHA256);
    // Where the shared reference is checked out beside the repository, it is the same file.
    const reference = await readFile(REFERENCE_SPEC).catch(() => undefined);
    if (reference !== undefined)
      expect(createHash("sha256").update(reference).digest("hex")).toBe(OFFICIAL_SHA256);
  });

  it("knows the operations the driver uses", () => {
    const ids = spec.operations.map((o) => o.operationId);
    expect(ids).toEqual(
      expect.arrayContaining([
        "putMachineConfiguration",
        "putGuestBootSource",
        "putGuestDriveByID",
        "putGuestNetworkInterfaceByID",
        "createSyncAction",
        "describeInstance",
      ]),
    );
    expect(spec.operations.find((o) => o.operationId === "putGuestBootSource")?.phase).toBe("pre-boot");
  });
});

describe("the fake Firecracker rejects what breaks the spec", () => {
  it("rejects an unknown path and a wrong method", async () => {
    expect(await fault("PUT", "/boot", { kernel_image_path: kernel })).toMatch(
      /Invalid request method and\/or path/,
    );
    expect(await fault("PATCH", "/boot-source", { kernel_image_path: kernel })).toMatch(
      /Invalid request method/,
    );
  });

  it("rejects a body without a required field", async () => {
    expect(await fault("PUT", "/machine-config", { vcpu_count: 1 })).toMatch(/mem_size_mib/);
  });

  it("rejects a field of the wrong type, out of range, or outside its enum", async () => {
    expect(await fault("PUT", "/machine-config", { vcpu_count: "2", mem_size_mib: 128 })).toMatch(/integer/);
    expect(await fault("PUT", "/machine-config", { vcpu_count: 64, mem_size_mib: 128 })).toMatch(/<= 32/);
    expect(await fault("PUT", "/actions", { action_type: "Stop" })).toMatch(/allowed values/);
  });

  it("rejects a field the spec does not name", async () => {
    expect(
      await fault("PUT", "/machine-config", { vcpu_count: 1, mem_size_mb: 128, mem_size_mib: 128 }),
    ).toMatch(/mem_size_mb/);
  });

  it("checks a regular-expression format (MmdsConfig.ipv4_address)", async () => {
    expect(await fault("PUT", "/mmds/config", { network_interfaces: [], ipv4_address: "10.0.0.1" })).toMatch(
      /format/,
    );
    expect(
      await fault("PUT", "/mmds/config", { network_interfaces: [], ipv4_address: "169.254.169.254" }),
    ).toBe(undefined);
  });

  it("rejects a body that is not JSON, and a missing required body", async () => {
    expect(await fault("PUT", "/actions")).toMatch(/Missing body/);
    const raw = await new Promise<number>((resolve, reject) => {
      import("node:http").then(({ request }) => {
        const req = request({ socketPath: socket, method: "PUT", path: "/actions" }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end("{not json");
      });
    });
    expect(raw).toBe(400);
  });

  it("rejects an id in the body that differs from the one in the path", async () => {
    expect(
      await fault("PUT", "/drives/rootfs", {
        drive_id: "other",
        path_on_host: kernel,
        is_root_device: true,
        is_read_only: true,
      }),
    ).toMatch(/does not match/);
  });

  it("rejects a kernel file that does not exist, as Firecracker cannot open it", async () => {
    expect(await fault("PUT", "/boot-source", { kernel_image_path: join(dir, "missing") })).toMatch(
      /Cannot open/,
    );
  });

  it("refuses InstanceStart without a kernel, twice, and pre-boot calls after it", async () => {
    expect(await fault("PUT", "/actions", { action_type: "InstanceStart" })).toMatch(/without kernel/);
    expect(await fault("PUT", "/boot-source", { kernel_image_path: kernel })).toBeUndefined();
    expect(await fault("PUT", "/actions", { action_type: "InstanceStart" })).toBeUndefined();
    expect(await fault("PUT", "/actions", { action_type: "InstanceStart" })).toMatch(/already running/);
    expect(await fault("PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 })).toMatch(
      /not supported after starting/,
    );
  });

  it("refuses SendCtrlAltDel before the VM started", async () => {
    expect(await fault("PUT", "/actions", { action_type: "SendCtrlAltDel" })).toMatch(/before starting/);
  });
});

describe("the fake Firecracker answers as the spec says", () => {
  it("describes the instance with a body of the spec's InstanceInfo shape", async () => {
    const info = await firecrackerCall(socket, "GET", "/");
    expect(spec.definition("InstanceInfo")(info)).toBe(true);
    expect(info).toMatchObject({ state: "Not started", vmm_version: "1.16.1" });
  });

  it("accepts a valid configuration, starts, and its guest prints the readiness line", async () => {
    await firecrackerCall(socket, "PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 });
    await firecrackerCall(socket, "PUT", "/boot-source", {
      kernel_image_path: kernel,
      boot_args: "console=ttyS0 mikrom.vm=v1 mikrom.ip=10.0.0.2/24",
    });
    await firecrackerCall(socket, "PUT", "/actions", { action_type: "InstanceStart" });
    expect(await firecrackerCall(socket, "GET", "/machine-config")).toMatchObject({ vcpu_count: 2 });
    expect(((await firecrackerCall(socket, "GET", "/")) as { state: string }).state).toBe("Running");
    await expect.poll(() => consoleText, { timeout: 2000 }).toContain("MIKROM-READY vm=v1 ip=10.0.0.2/24");
    expect(fake.journal.map((e) => e.status)).toEqual([204, 204, 204, 200, 200]);
  });
});
