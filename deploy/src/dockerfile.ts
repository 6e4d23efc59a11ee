/**
 * The repository's Dockerfile read as Docker reads it, enough to say what one build gets: its stages,
 * the chain of stages a target is built on, and each instruction with the build arguments and ENV
 * values in force replaced (Docker's own substitution, in the instructions where Docker does it).
 * No Docker engine is needed; deploy/test/dockerfiles.test.ts asks it about every service's image.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./env-reads.ts";

export const dockerfilePath = join(repoRoot, "Dockerfile");

export interface Instruction {
  /** Upper case: FROM, RUN, COPY... */
  readonly keyword: string;
  /** The rest of the line, continuation lines joined; variables as written. */
  readonly args: string;
}

export interface Stage {
  readonly name: string | undefined;
  /** An image, or an earlier stage's name. */
  readonly base: string;
  readonly instructions: readonly Instruction[];
}

/** Stages in file order; comments, blank lines and the parser directive dropped. */
export function parseDockerfile(text = readFileSync(dockerfilePath, "utf8")): Stage[] {
  const instructions = text
    .replace(/\\\n(\s*#[^\n]*\n)*/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((line): Instruction => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(" ") };
    });
  const stages: { name: string | undefined; base: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [base = "", as, name] = instruction.args.split(" ");
      stages.push({ name: as?.toUpperCase() === "AS" ? name : undefined, base, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** `${NAME}` and `$NAME` replaced by their values; unknown names by "" (as Docker does). */
export function substitute(text: string, values: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, braced, bare) => values.get(braced ?? bare) ?? "");
}

/** Docker substitutes variables in these instructions at build time; RUN and CMD are the shell's. */
const SUBSTITUTED = new Set([
  "ADD",
  "COPY",
  "ENV",
  "EXPOSE",
  "LABEL",
  "STOPSIGNAL",
  "USER",
  "VOLUME",
  "WORKDIR",
]);

export interface ResolvedInstruction extends Instruction {
  /** The stage it belongs to (its name, or its index when unnamed). */
  readonly stage: string;
}

export interface Image {
  /** The target's stages, the one built FROM an image first. */
  readonly chain: readonly Stage[];
  /** The chain's instructions in build order, variables substituted where Docker does. */
  readonly instructions: readonly ResolvedInstruction[];
  /** The ENV the container starts with. */
  readonly env: ReadonlyMap<string, string>;
  /** Instructions of another stage, resolved with the same build arguments (e.g. the `deps` stage). */
  stage(name: string): readonly ResolvedInstruction[];
  /** The last instruction of this kind (USER, HEALTHCHECK and CMD are inherited until replaced). */
  last(keyword: string): ResolvedInstruction | undefined;
}

/** What `docker build --target <target> --build-arg ...` builds; no target: the last stage. */
export function image(
  stages: readonly Stage[],
  build: { target?: string | undefined; args?: Readonly<Record<string, string>> | undefined },
): Image {
  const args = new Map(Object.entries(build.args ?? {}));
  const byName = new Map(stages.flatMap((s) => (s.name ? [[s.name, s] as const] : [])));
  const target = build.target === undefined ? stages.at(-1) : byName.get(build.target);
  if (!target) throw new Error(`no stage named ${build.target}`);

  const chainOf = (stage: Stage): Stage[] => {
    const base = byName.get(stage.base);
    return base ? [...chainOf(base), stage] : [stage];
  };
  // Each stage starts with no build argument in scope until it declares one with ARG; ENV is inherited
  // from the stage it is built on.
  const resolve = (chain: readonly Stage[]): { out: ResolvedInstruction[]; env: Map<string, string> } => {
    const env = new Map<string, string>();
    const out: ResolvedInstruction[] = [];
    for (const stage of chain) {
      const scope = new Map(env);
      const label = stage.name ?? String(stages.indexOf(stage));
      for (const instruction of stage.instructions) {
        const resolved = SUBSTITUTED.has(instruction.keyword)
          ? substitute(instruction.args, scope)
          : instruction.args;
        if (instruction.keyword === "ARG") {
          const [name = "", fallback] = instruction.args.split("=");
          const value = args.get(name) ?? fallback;
          if (value !== undefined) scope.set(name, value);
        }
        if (instruction.keyword === "ENV") {
          for (const [, name, value] of resolved.matchAll(/(\w+)=(\S*)/g)) {
            env.set(name!, value!);
            scope.set(name!, value!);
          }
        }
        out.push({ ...instruction, args: resolved, stage: label });
      }
    }
    return { out, env };
  };

  const chain = chainOf(target);
  const { out, env } = resolve(chain);
  return {
    chain,
    instructions: out,
    env,
    stage(name) {
      const stage = byName.get(name);
      if (!stage) throw new Error(`no stage named ${name}`);
      return resolve(chainOf(stage)).out;
    },
    last(keyword) {
      return out.findLast((i) => i.keyword === keyword);
    },
  };
}

/** An exec-form (JSON array) CMD or HEALTHCHECK's command, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  const json = args.replace(/^(--\S+\s+)*(CMD\s+)?/, "");
  return json.startsWith("[") ? (JSON.parse(json) as string[]) : undefined;
}
