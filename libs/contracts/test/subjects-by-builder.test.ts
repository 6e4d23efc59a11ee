import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");
const builders = join(root, "libs", "contracts", "src", "subjects.ts");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}

/** A subject's kind token (`cmd`, `evt`, `qry`, `dlq`) next to an interpolation or a quote: one made by hand. */
const HAND_MADE = /(\$\{[^}]*\}|["'`])\.?(cmd|evt|qry|dlq)\.|\.(cmd|evt|qry|dlq)\.\$\{/;

describe("subjects", () => {
  it("are built only by the builders in libs/contracts (src/subjects.ts)", () => {
    const files = ["services", "libs"].flatMap((top) =>
      readdirSync(join(root, top)).flatMap((pkg) => {
        try {
          return sources(join(root, top, pkg, "src"));
        } catch {
          return [];
        }
      }),
    );
    expect(files.length).toBeGreaterThan(50);
    const offenders = files
      .filter((file) => file !== builders)
      .flatMap((file) =>
        readFileSync(file, "utf8")
          .split("\n")
          .map((line, i) => ({ line: line.trim(), at: `${relative(root, file)}:${i + 1}` }))
          .filter(({ line }) => !line.startsWith("*") && !line.startsWith("//") && HAND_MADE.test(line))
          .map(({ at, line }) => `${at}: ${line}`),
      );
    expect(offenders).toEqual([]);
  });
});
