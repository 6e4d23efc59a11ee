import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");
const services = readdirSync(join(root, "services"));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}

/** Every `import … from "x"` / `export … from "x"` of a file, with whether it is type-only. */
function imports(text: string): Array<{ from: string; typeOnly: boolean }> {
  return [...text.matchAll(/^(import|export)(\s+type)?\b[^;]*?\sfrom\s+"([^"]+)"/gms)].map((m) => ({
    from: m[3]!,
    typeOnly: m[2] !== undefined,
  }));
}

/** Packages a domain module may import: they do no I/O (the decider kit is pure by its own contract). */
const PURE = new Set(["@mikrom/contracts", "@mikrom/eventstore/decider"]);

describe("every service", () => {
  it("is five services, each with a main.ts", () => {
    expect(services.sort()).toEqual(["api-gateway", "audit", "ippool-service", "provisioner", "vm-service"]);
  });

  it.each(services)("%s runs on the shared skeleton: main.ts hands its definition to runService", (svc) => {
    const main = readFileSync(join(root, "services", svc, "src", "main.ts"), "utf8");
    expect(imports(main).map((i) => i.from)).toContain("@mikrom/runtime");
    expect(main).toMatch(/\brunService\(/);
    const service = readFileSync(join(root, "services", svc, "src", "service.ts"), "utf8");
    expect(service).toMatch(/:\s*ServiceDefinition\b|ServiceDefinition</);
    // Nobody else connects, relays or serves health by hand.
    for (const file of sources(join(root, "services", svc, "src"))) {
      const text = readFileSync(file, "utf8");
      expect(text, relative(root, file)).not.toMatch(
        /\bcreateRelay\(|\bserveHealth\(|\bconnectNats\(|@nats-io\/transport-node"[^;]*\bconnect\b/,
      );
    }
  });

  it.each(
    services.filter((svc) => {
      try {
        return readdirSync(join(root, "services", svc, "src", "domain")).length > 0;
      } catch {
        return false;
      }
    }),
  )(
    "%s: domain/ imports nothing that does I/O (only domain/ itself, @mikrom/contracts, the pure decider kit, and types)",
    (svc) => {
      const dir = join(root, "services", svc, "src", "domain");
      const offenders = sources(dir).flatMap((file) =>
        imports(readFileSync(file, "utf8"))
          .filter((i) => !i.typeOnly && !i.from.startsWith("./") && !PURE.has(i.from))
          .map((i) => `${relative(root, file)}: ${i.from}`),
      );
      expect(offenders).toEqual([]);
    },
  );

  it("has its pure decisions in domain/ where it has any (vm-service, ippool-service, provisioner)", () => {
    for (const svc of ["vm-service", "ippool-service", "provisioner"])
      expect(sources(join(root, "services", svc, "src", "domain")).length, svc).toBeGreaterThan(0);
  });
});
