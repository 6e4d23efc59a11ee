import { describe, expect, it } from "vitest";
import { hostOfFact, names, parse, Registry, ValidationFailed, VmCreated } from "../src/index.ts";

const valid = {
  vmId: "srv-0a1b2c3d",
  userId: 7,
  name: "web-1",
  description: null,
  vcpuCount: 2,
  memoryMb: 512,
};

describe("message contracts", () => {
  it("parse returns valid data unchanged", () => {
    expect(parse(VmCreated, valid)).toEqual(valid);
  });

  it("parse names every invalid field", () => {
    const error = (() => {
      try {
        parse(VmCreated, { ...valid, vmId: "vm-1", vcpuCount: 0 });
      } catch (e) {
        return e;
      }
    })() as ValidationFailed;
    expect(error).toBeInstanceOf(ValidationFailed);
    expect(error.issues.map((i) => i.path)).toEqual(["vmId", "vcpuCount"]);
    expect(error.message).toMatch(/^VmCreated is invalid: vmId: .*; vcpuCount: /);
  });

  it("a registry refuses an unknown type and a duplicate definition", () => {
    const registry = new Registry([VmCreated]);
    expect(registry.parse("VmCreated", valid)).toEqual({ type: "VmCreated", data: valid });
    expect(() => registry.parse("VmExploded", {})).toThrow(/unknown message type VmExploded/);
    expect(() => new Registry([VmCreated, VmCreated])).toThrow(/duplicate message type VmCreated/);
  });
});

describe("subjects and streams", () => {
  it("follow the documented layout under a namespace", () => {
    const n = names();
    expect(n.command("vm", "create")).toBe("mikrom.cmd.vm.create");
    expect(n.command("provisioner", "host-1", "boot")).toBe("mikrom.cmd.provisioner.host-1.boot");
    expect(n.event("vm", "srv-1a2b3c4d", "VmRunning")).toBe("mikrom.evt.vm.srv-1a2b3c4d.VmRunning");
    expect(n.query("vm", "get")).toBe("mikrom.qry.vm.get");
    expect(n.heartbeat("host-1")).toBe("mikrom.beat.host-1");
    expect(n.streams).toEqual({
      commands: "MIKROM_COMMANDS",
      events: "MIKROM_EVENTS",
      deadLetters: "MIKROM_DLQ",
    });
    expect(names("t1").allEvents).toBe("t1.evt.>");
  });

  it("build the filters consumers and subscriptions use", () => {
    const n = names();
    expect(n.commandsTo("vm")).toBe("mikrom.cmd.vm.>");
    expect(n.commandsTo("provisioner", "host-1")).toBe("mikrom.cmd.provisioner.host-1.*");
    expect(n.eventsOf("ippool")).toBe("mikrom.evt.ippool.*.*");
    expect(n.eventsOf("vm", "srv-1a2b3c4d")).toBe("mikrom.evt.vm.srv-1a2b3c4d.*");
    expect(() => n.eventsOf("vm", "srv.1")).toThrow(/entity id "srv.1"/);
    expect(() => n.commandsTo("provisioner", "*")).toThrow(/host id/);
    expect(n.allHeartbeats).toBe("mikrom.beat.*");
    expect(() => n.heartbeat("*")).toThrow(/host id/);
  });

  it("refuse tokens that would change a subject's shape", () => {
    expect(() => names().event("vm", "a.b", "VmRunning")).toThrow(/entity id "a.b"/);
    expect(() => names().command("vm", ">")).toThrow(/not a valid subject token/);
    expect(() => names("a b")).toThrow(/namespace/);
  });
});

describe("event subjects read back", () => {
  const n = names("t1");
  it("splits an event subject of the namespace into context, entity and type; nothing else", () => {
    expect(n.eventParts(n.event("vm", "srv-1", "VmRunning"))).toEqual({
      context: "vm",
      entityId: "srv-1",
      type: "VmRunning",
    });
    expect(n.eventParts("t2.evt.vm.srv-1.VmRunning")).toBeNull();
    expect(n.eventParts(n.command("vm", "create"))).toBeNull();
    expect(n.eventParts("t1.evt.vm.srv-1")).toBeNull();
    expect(n.eventParts("t1.evt.vm.srv-1.VmRunning.x")).toBeNull();
  });

  it("believes a host's fact only on that host's own subject", () => {
    const fact = { hostId: "h1" };
    expect(hostOfFact(n, n.event("provisioner", "h1", "VmBooted"), fact)).toBe("h1");
    expect(hostOfFact(n, n.event("host", "h1", "HostHeartbeat"), fact)).toBe("h1");
    expect(hostOfFact(n, n.event("provisioner", "h2", "VmBooted"), fact)).toBeNull();
    expect(hostOfFact(n, n.event("host", "h2", "HostStopped"), fact)).toBeNull();
    // Another context's subject is no host's, whatever its entity says.
    expect(hostOfFact(n, n.event("vm", "h1", "VmRunning"), fact)).toBeNull();
    expect(hostOfFact(n, "t2.evt.provisioner.h1.VmBooted", fact)).toBeNull();
  });
});
