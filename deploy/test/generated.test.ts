import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { deployDir, GENERATED } from "../src/generate.ts";

describe("generated files", () => {
  test.each(GENERATED.map((g) => [g.path, g] as const))(
    "deploy/%s is what generate.ts writes (run `node deploy/src/generate.ts` after a change)",
    (_path, file) => {
      const written = readFileSync(join(deployDir, file.path), "utf8");
      // JSON is compared as data: the repository's formatter lays it out its own way.
      if (file.path.endsWith(".json")) expect(JSON.parse(written)).toEqual(JSON.parse(file.render()));
      else expect(written).toBe(file.render());
    },
  );
});
