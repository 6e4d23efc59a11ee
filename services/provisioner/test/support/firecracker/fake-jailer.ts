import {
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchownSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { basename, join } from "node:path";
import { osErrorText } from "./os-error.ts";

/**
 * A stand-in for Firecracker's jailer, held to its contract (docs/jailer.md and src/jailer of
 * v1.16.1, the version of the API spec the fake Firecracker serves), for tests on machines that
 * cannot run it. Run as root, it:
 * - parses the jailer's options as its parser does (`--name value` only, required ones, no
 *   repeats, Firecracker's arguments after `--`) and refuses as the jailer does: its message on
 *   stderr, exit status 1;
 * - validates the id (alphanumerics and '-', 1 to 64 bytes), the exec file (resolved, a file), the
 *   chroot base (resolved, a folder), the uid and gid;
 * - makes <chroot base>/<exec file's name>/<id>/root, copies the exec file in (owned by the uid and
 *   gid, refusing a hard link), makes /, /dev, /dev/net and /run there 0700 and the uid's, and
 *   writes /<exec file's name>.pid (refused when a run left one);
 * - clears the environment, drops to the gid and uid, and execs the copy in the same process with
 *   `--id <id> --start-time-us … --start-time-cpu-us … --parent-cpu-time-us …` and what followed `--`.
 * Node cannot pivot_root, chroot, mknod or setns: the copy runs with the chroot as its working
 * folder and FAKE_FIRECRACKER_ROOT naming it (the fake Firecracker takes its paths inside it), there
 * is no /dev/kvm or /dev/net/tun in it, and the options it cannot honour (cgroups, resource limits,
 * netns, daemonize, new pid namespace) are refused rather than ignored. FAKE_JAILER_JOURNAL, when
 * set, names a file it appends its arguments to (as a JSON line) before anything else.
 */

interface Option {
  readonly takesValue: boolean;
  readonly required?: boolean;
  readonly multiple?: boolean;
  readonly fallback?: string;
}

const OPTIONS: Record<string, Option> = {
  id: { takesValue: true, required: true },
  "exec-file": { takesValue: true, required: true },
  uid: { takesValue: true, required: true },
  gid: { takesValue: true, required: true },
  "chroot-base-dir": { takesValue: true, fallback: "/srv/jailer" },
  netns: { takesValue: true },
  daemonize: { takesValue: false },
  "new-pid-ns": { takesValue: false },
  cgroup: { takesValue: true, multiple: true },
  "resource-limit": { takesValue: true, multiple: true },
  "cgroup-version": { takesValue: true, fallback: "1" },
  "parent-cgroup": { takesValue: true },
  version: { takesValue: false },
};
const NOT_EMULATED = ["netns", "daemonize", "new-pid-ns", "cgroup", "resource-limit", "parent-cgroup"];
const JAILER_VERSION = "1.16.1";
/** The folders the jailer makes in the chroot and gives to the uid: the API socket's /run among them. */
const JAILED_FOLDERS = ["/", "/dev", "/dev/net", "/run"];

class Refusal extends Error {}

const micros = (): string => String(Math.round(performance.timeOrigin * 1000 + performance.now() * 1000));
const cpuMicros = (): string => String(process.cpuUsage().user + process.cpuUsage().system);

function badArguments(message: string): never {
  throw new Refusal(`Failed to parse arguments: ${message}`);
}

/** As the jailer's ArgParser: `--name value` pairs and flags before `--`, Firecracker's arguments after. */
function parse(args: string[]): { values: Map<string, string | string[] | true>; extra: string[] } {
  const split = args.indexOf("--");
  const own = split === -1 ? args : args.slice(0, split);
  const extra = split === -1 ? [] : args.slice(split + 1);
  const values = new Map<string, string | string[] | true>();
  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    const name = arg.startsWith("--") ? arg.slice(2) : arg;
    const option = OPTIONS[name];
    if (!arg.startsWith("--") || !option)
      badArguments(`Found argument '${name}' which wasn't expected, or isn't valid in this context.`);
    if (!option.multiple && values.has(name))
      badArguments(`The argument '${name}' was provided more than once.`);
    if (!option.takesValue) {
      values.set(name, true);
      continue;
    }
    const value = own[++i];
    if (value === undefined || value.startsWith("--"))
      badArguments(`The argument '${name}' requires a value, but none was supplied.`);
    const before = values.get(name);
    values.set(name, option.multiple ? [...(Array.isArray(before) ? before : []), value] : value);
  }
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (option.required && !values.has(name)) badArguments(`Argument '${name}' required, but not found.`);
    if (option.fallback !== undefined && !values.has(name)) values.set(name, option.fallback);
  }
  return { values, extra };
}

/** validators::validate_instance_id: the length in bytes, the position in characters. */
function validateId(id: string): void {
  const length = Buffer.byteLength(id);
  if (length < 1 || length > 64)
    throw new Refusal(`Invalid instance ID: Invalid len (${length});  the length must be between 1 and 64`);
  [...id].forEach((char, position) => {
    if (char !== "-" && !/^[\p{Alphabetic}\p{N}]$/u.test(char))
      throw new Refusal(`Invalid instance ID: Invalid char (${char}) at position ${position}`);
  });
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch (error) {
    throw new Refusal(`Failed to canonicalize path ${path}: ${osErrorText(error)}`);
  }
}

function parseId(kind: "uid" | "gid", text: string): number {
  const value = /^\+?\d+$/.test(text) ? Number(text.replace("+", "")) : Number.NaN;
  if (!Number.isSafeInteger(value) || value > 0xffff_ffff) throw new Refusal(`Invalid ${kind}: ${text}`);
  return value;
}

/** Like Env::copy_exec_to_chroot: never through a link, never onto a hard-linked file, owned by the uid and gid. */
function copyExec(source: string, target: string, uid: number, gid: number): void {
  const mode = statSync(source).mode & 0o7777;
  let fd: number;
  try {
    fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, mode);
  } catch (error) {
    throw new Refusal(`Failed to open ${target}: ${osErrorText(error)}`);
  }
  try {
    if (fstatSync(fd).nlink > 1) throw new Refusal(`Detected hard link at: ${target}`);
    fchownSync(fd, uid, gid);
    writeSync(fd, readFileSync(source));
  } finally {
    closeSync(fd);
  }
}

function jail(args: string[]): never {
  const { values, extra } = parse(args);
  if (values.has("version")) {
    process.stdout.write(`Jailer v${JAILER_VERSION}\n\n`);
    process.exit(0);
  }
  const id = values.get("id") as string;
  validateId(id);
  const execFile = canonical(values.get("exec-file") as string);
  if (!statSync(execFile).isFile()) throw new Refusal(`${execFile} is not a file`);
  const execName = basename(execFile);
  const base = canonical(values.get("chroot-base-dir") as string);
  if (!statSync(base).isDirectory()) throw new Refusal(`${base} is not a directory`);
  const chroot = join(base, execName, id, "root");
  const uid = parseId("uid", values.get("uid") as string);
  const gid = parseId("gid", values.get("gid") as string);
  const version = values.get("cgroup-version") as string;
  if (!/^\d+$/.test(version) || Number(version) > 255)
    throw new Refusal(`${version} is an invalid cgroup version specifier`);
  const unsupported = NOT_EMULATED.find((name) => values.has(name)) ?? (version !== "1" && "cgroup-version");
  if (unsupported) throw new Refusal(`fake jailer: --${unsupported} is not emulated`);

  try {
    mkdirSync(chroot, { recursive: true });
  } catch (error) {
    throw new Refusal(`Failed to create directory ${chroot}: ${osErrorText(error)}`);
  }
  copyExec(execFile, join(chroot, execName), uid, gid);
  for (const folder of JAILED_FOLDERS) {
    const path = join(chroot, folder);
    mkdirSync(path, { recursive: true });
    chmodSync(path, 0o700);
    chownSync(path, uid, gid);
  }
  const pidFile = `/${execName}.pid`;
  try {
    writeFileSync(join(chroot, pidFile), String(process.pid), { flag: "wx" });
  } catch (error) {
    throw new Refusal(`Failed to open file ${pidFile}: ${osErrorText(error)}`);
  }

  const { setgroups, setgid, setuid, execve } = process;
  if (!setgroups || !setgid || !setuid || !execve)
    throw new Refusal("fake jailer: needs Node 23.11 or later on Linux");
  const started = micros();
  process.chdir(chroot);
  setgroups([]);
  setgid(gid);
  setuid(uid);
  try {
    execve(
      join(chroot, execName),
      [
        `/${execName}`,
        "--id",
        id,
        "--start-time-us",
        started,
        "--start-time-cpu-us",
        cpuMicros(),
        "--parent-cpu-time-us",
        cpuMicros(),
        ...extra,
      ],
      { FAKE_FIRECRACKER_ROOT: chroot },
    );
  } catch (error) {
    throw new Refusal(`Failed to exec into Firecracker: ${osErrorText(error)}`);
  }
  throw new Refusal("Failed to exec into Firecracker");
}

const args = process.argv.slice(2);
const journal = process.env.FAKE_JAILER_JOURNAL;
if (journal) appendFileSync(journal, `${JSON.stringify(args)}\n`);
try {
  jail(args);
} catch (error) {
  if (!(error instanceof Refusal)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
