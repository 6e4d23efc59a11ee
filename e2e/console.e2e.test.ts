import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createTestDatabase, createTestNats, type TestDatabase, type TestNats } from "@mikrom/testkit";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { ADMIN, type E2eSystem, login, startE2eSystem } from "./harness.ts";

/**
 * The web console in a real browser: Chromium (the Debian package, which .ci/run installs) driven by
 * playwright-core, against the whole system as processes. A missing Chromium fails the suite: CI
 * installs it, so its absence is a broken machine, not a reason to skip.
 */
const CHROMIUM = "/usr/bin/chromium";
/** Screenshots and the accessibility report of the last run (git-ignored). */
const ARTIFACTS = join(import.meta.dirname, "..", "test-results", "console");
const GRAFANA = "http://grafana.e2e.invalid:3000";
const ALICE = { email: "alice@console.example", password: "alice-password-1" };
const BOB = { email: "bob@console.example", password: "bob-password-12" };
/** A boot long enough to see it progress on the page (the fake driver slows boots only). */
const FAKE_LATENCY_MS = "3000";
const UNTIL = { timeout: 60_000 };

/** WCAG 2.0-2.2 A and AA, and axe's best practices. */
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

let db: TestDatabase;
let nats: TestNats;
let e2e: E2eSystem;
let browser: Browser;
let axeSource: string;
let setupFailure: unknown;
const screenshots: string[] = [];
const axeReport: Record<string, { serious: number; all: { id: string; impact: string | null }[] }> = {};

/** Each test starts here: the suite's setup (Chromium, the system) failed, so does the test. */
function ready(): void {
  if (setupFailure) throw setupFailure;
}

async function shot(page: Page, name: string): Promise<void> {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

/** axe-core in the page (evaluated over the DevTools protocol, which the page's CSP does not govern). */
async function axe(page: Page, name: string): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate<AxeViolation[]>(
    `axe.run(document, { runOnly: { type: "tag", values: ${JSON.stringify(AXE_TAGS)} } }).then((r) => r.violations)`,
  );
  const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  axeReport[name] = { serious: serious.length, all: violations.map((v) => ({ id: v.id, impact: v.impact })) };
  return serious;
}

/** Screenshot and accessibility check of the page as it is now; no serious or critical violation. */
async function check(page: Page, name: string): Promise<void> {
  await shot(page, name);
  const serious = await axe(page, name);
  expect(
    serious.map(
      (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
    ),
    `axe on ${name}`,
  ).toEqual([]);
}

async function newPage(options: { width?: number } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: 900 } });
  const page = await context.newPage();
  page.on("dialog", (dialog) => void dialog.accept());
  return { context, page };
}

async function logIn(page: Page, who: { email: string; password: string }): Promise<void> {
  await page.goto(`${e2e.api}/login`);
  await page.getByLabel("Email or username").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Virtual machines" }).waitFor();
}

async function text(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? "").trim();
}

function nav(page: Page, name: string): Locator {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

function rowOf(page: Page, name: string): Locator {
  return page.locator("tr[data-vm-row]", { has: page.getByRole("link", { name, exact: true }) });
}

async function statusIs(row: Locator, status: string): Promise<void> {
  await row
    .locator("[data-vm-status]")
    .filter({ hasText: new RegExp(`^${status}$`) })
    .waitFor(UNTIL);
}

/**
 * Marks the document (the mark survives anything but a reload or a navigation) and records what it
 * shows from now on: each VM's statuses in order, and whether progress was shown (a progress bar, or
 * a busy button while its operation is sent). A recorder sees a state however briefly it was shown.
 */
async function watch(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const seen = (globalThis.consoleTestSeen = { statuses: {}, progress: false });
    globalThis.consoleTestMark = true;
    const look = () => {
      for (const el of document.querySelectorAll("[data-vm-status]")) {
        const list = (seen.statuses[el.dataset.vmStatus] ??= []);
        const status = el.textContent.trim();
        if (list.at(-1) !== status) list.push(status);
      }
      if (document.querySelector("main progress, button[aria-busy=true]")) seen.progress = true;
    };
    new MutationObserver(look).observe(document.body, {
      subtree: true, childList: true, attributes: true, characterData: true,
    });
    look();
  })()`);
}

interface Seen {
  statuses: Record<string, string[]>;
  progress: boolean;
}

function seen(page: Page): Promise<Seen> {
  return page.evaluate<Seen>("globalThis.consoleTestSeen");
}

/** Waits a while for a state that may be brief; the recorder, not this, is what the test asserts. */
async function briefly(locator: Locator): Promise<void> {
  await locator.waitFor({ timeout: 15_000 }).catch(() => {});
}

async function stillSameDocument(page: Page): Promise<boolean> {
  return page.evaluate<boolean>("globalThis.consoleTestMark === true");
}

async function createVm(page: Page, name: string): Promise<void> {
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Memory").selectOption("256");
  await page.getByRole("button", { name: "Create VM" }).click();
}

describe("web console in Chromium", () => {
  // A failed hook would mark every test skipped; a failed setup must fail each test instead.
  beforeAll(async () => {
    setupFailure = await setUp().then(
      () => undefined,
      (error: unknown) => error ?? new Error("setup failed"),
    );
  }, 240_000);

  async function setUp(): Promise<void> {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `Chromium is not installed at ${CHROMIUM}: the console's browser tests need it. ` +
          "Install it with `apt-get install chromium` (.ci/run does).",
      );
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    axeSource = await readFile(new URL(import.meta.resolve("axe-core/axe.min.js")), "utf8");
    db = await createTestDatabase(inject("databaseUrl"));
    nats = await createTestNats(inject("natsUrl"));
    e2e = await startE2eSystem({
      natsUrl: nats.url,
      databaseUrl: db.url,
      namespace: nats.namespace,
      env: { MIKROM_DRIVER: "fake", MIKROM_FAKE_LATENCY_MS: FAKE_LATENCY_MS, GRAFANA_URL: GRAFANA },
    });
    // Root cannot use Chromium's sandbox (no user namespaces for it there).
    const args = process.getuid?.() === 0 ? ["--no-sandbox"] : [];
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
    await login(e2e.api, ALICE, true);
    await login(e2e.api, BOB, true);
  }

  afterAll(async () => {
    await browser?.close();
    await e2e?.close();
    await nats?.cleanup();
    await db?.drop();
    await writeFile(join(ARTIFACTS, "axe.json"), JSON.stringify(axeReport, null, 2)).catch(() => {});
    const serious = Object.values(axeReport).reduce((n, r) => n + r.serious, 0);
    const other = Object.values(axeReport).reduce((n, r) => n + r.all.length, 0) - serious;
    process.stdout.write(
      `console screenshots (${screenshots.length}) in ${ARTIFACTS}:\n` +
        `${screenshots.map((s) => `  ${s}`).join("\n")}\n` +
        `axe: ${Object.keys(axeReport).length} pages, ${serious} serious or critical, ${other} other violations (axe.json)\n`,
    );
  }, 60_000);

  test("a user logs in, creates a VM, sees it reach running without a reload, stops it and deletes it", {
    timeout: 180_000,
  }, async () => {
    ready();
    const { context, page } = await newPage();
    try {
      await page.goto(`${e2e.api}/`);
      expect(new URL(page.url()).pathname).toBe("/login");
      await check(page, "01-login");
      await logIn(page, ALICE);
      await page.getByText("No VMs yet").waitFor();
      await check(page, "02-vms-empty");
      await watch(page);

      await createVm(page, "web-1");
      const row = rowOf(page, "web-1");
      await row.waitFor(UNTIL);
      // Progress while the operation runs, then running: all on the same document.
      await briefly(row.locator("progress"));
      await shot(page, "03-vm-creating");
      await statusIs(row, "running");
      expect(await stillSameDocument(page), "the page reloaded").toBe(true);
      const vmId = (await row.getAttribute("data-vm-row"))!;
      const created = await seen(page);
      expect(created.progress, "progress was shown").toBe(true);
      expect(created.statuses[vmId]?.[0]).toMatch(/^(pending|provisioning)$/);
      expect(created.statuses[vmId]?.at(-1)).toBe("running");
      await expect(row.locator("progress").count()).resolves.toBe(0);
      const address = await text(row.locator('td[data-label="Address"]'));
      expect(address).toMatch(/^172\.16\.0\.\d+$/);
      expect(await text(row.locator('td[data-label="Host"]'))).toContain("e2e-host");
      await check(page, "04-vm-running");

      // Its page: details, host, and its history with trace ids linked to Grafana.
      await row.getByRole("link", { name: "web-1" }).click();
      await page.getByRole("heading", { name: "web-1" }).waitFor();
      const details = page.locator("dl.details");
      await details.getByText(address).waitFor();
      await details.getByText("e2e-host").waitFor();
      await details.getByText("reachable", { exact: true }).waitFor();
      const timeline = page.locator("ol.timeline li");
      await page.getByText(`Running on e2e-host at ${address}`).waitFor(UNTIL);
      expect(await timeline.count()).toBeGreaterThanOrEqual(3);
      const traceLinks = page.locator(`ol.timeline a[href^="${GRAFANA}/explore?"]`);
      expect(await traceLinks.count()).toBeGreaterThan(0);
      await check(page, "05-vm-page");

      // Stop from the VM's page: progress, then stopped, without a reload.
      await watch(page);
      await page.getByRole("button", { name: "Stop web-1" }).click();
      await briefly(page.locator("#vm-summary progress"));
      await shot(page, "06-vm-stop-sent");
      await page
        .locator("#vm-summary [data-vm-status]")
        .filter({ hasText: /^stopped$/ })
        .waitFor(UNTIL);
      await page.getByText("Stopped", { exact: true }).waitFor(UNTIL);
      expect(await stillSameDocument(page), "the page reloaded").toBe(true);
      const stopped = await seen(page);
      expect(stopped.progress, "progress was shown").toBe(true);
      expect(stopped.statuses[vmId]).toEqual(expect.arrayContaining(["running", "stopped"]));
      await shot(page, "07-vm-stopped");

      // Delete from the list: the row shows progress, then leaves.
      await nav(page, "VMs").click();
      await page.getByRole("heading", { name: "Virtual machines" }).waitFor();
      await watch(page);
      await statusIs(rowOf(page, "web-1"), "stopped");
      await page.getByRole("button", { name: "Delete web-1" }).click();
      await briefly(
        rowOf(page, "web-1")
          .locator("[data-vm-status]")
          .filter({ hasText: /^deleting$/ }),
      );
      await shot(page, "08-vm-delete-sent");
      await rowOf(page, "web-1").waitFor({ state: "detached", ...UNTIL });
      await page.getByText("No VMs yet").waitFor();
      expect(await stillSameDocument(page), "the page reloaded").toBe(true);
      expect((await seen(page)).progress, "progress was shown").toBe(true);
    } finally {
      await context.close();
    }
  });

  test("a user never sees another user's VMs: not in the list, not live, not by address", {
    timeout: 180_000,
  }, async () => {
    ready();
    const alice = await newPage();
    const bob = await newPage();
    try {
      await logIn(alice.page, ALICE);
      await createVm(alice.page, "alice-vm");
      await statusIs(rowOf(alice.page, "alice-vm"), "running");
      const aliceVm = (await rowOf(alice.page, "alice-vm").getAttribute("data-vm-row"))!;
      await watch(alice.page);

      await logIn(bob.page, BOB);
      await createVm(bob.page, "bob-vm");
      await statusIs(rowOf(bob.page, "bob-vm"), "running");
      expect(await bob.page.getByText("alice-vm").count()).toBe(0);
      await shot(bob.page, "09-other-user-list");

      // Alice's live page followed every event of bob-vm's start without showing it.
      expect(await stillSameDocument(alice.page)).toBe(true);
      expect(await alice.page.getByText("bob-vm").count()).toBe(0);
      await alice.page.reload();
      expect(await alice.page.getByText("bob-vm").count()).toBe(0);
      const names = await alice.page.locator("tr[data-vm-row] th a").allTextContents();
      expect(names).toContain("alice-vm");
      expect(names.filter((n) => n.startsWith("bob"))).toEqual([]);

      // Alice's VM by its address: the API's 404, for Bob as for anyone else.
      const res = await bob.page.goto(`${e2e.api}/vms/${aliceVm}`);
      expect(res?.status()).toBe(404);
      await bob.page.getByText("VM not found").waitFor();
      await check(bob.page, "10-not-found");
    } finally {
      await alice.context.close();
      await bob.context.close();
    }
  });

  test("a superuser sees hosts with capacity and heartbeats, IP pools with usage and allocations, users, and the audit log with filters", {
    timeout: 120_000,
  }, async () => {
    ready();
    const { context, page } = await newPage();
    try {
      await logIn(page, ADMIN);
      // Every VM, with its owner.
      await rowOf(page, "alice-vm").waitFor();
      await rowOf(page, "bob-vm").waitFor();
      const vmCount = await page.locator("tr[data-vm-row]").count();
      await check(page, "11-admin-vms");

      await nav(page, "Hosts").click();
      const host = page.locator("tr", { has: page.getByText("e2e-host", { exact: true }) });
      await host.waitFor();
      expect(await text(host.locator('td[data-label="Driver"]'))).toBe("fake");
      expect(await text(host.locator('td[data-label="Capacity"]'))).toMatch(/\d+ vCPU · \d+/);
      expect(await text(host.locator('td[data-label="Last heartbeat"]'))).toMatch(/\d+ s ago/);
      expect(await text(host.locator('td[data-label="VMs"]'))).toMatch(new RegExp(`^${vmCount}\\b`));
      await check(page, "12-hosts");

      await nav(page, "IP pools").click();
      const pool = page.locator("section", { has: page.getByRole("heading", { name: "default" }) });
      await pool.waitFor();
      expect(await pool.locator("meter").getAttribute("value")).toBe(String(vmCount));
      await pool.getByRole("link", { name: "alice-vm" }).waitFor();
      await pool.getByRole("link", { name: "bob-vm" }).waitFor();
      await check(page, "13-ippools");

      await nav(page, "Users").click();
      await page.getByText(ALICE.email).waitFor();
      await page.getByText(BOB.email).waitFor();
      await check(page, "14-users");

      await nav(page, "Audit log").click();
      await page.getByRole("heading", { name: "Audit log" }).waitFor();
      await check(page, "15-audit");
      await page.getByLabel("Event type").fill("VmCreated");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.waitForURL(/type=VmCreated/);
      const types = await page.locator('tbody th[data-label="Type"]').allInnerTexts();
      expect(types.length).toBeGreaterThanOrEqual(3);
      expect(new Set(types)).toEqual(new Set(["VmCreated"]));
      expect(await page.locator(`tbody a[href^="${GRAFANA}/explore?"]`).count()).toBe(types.length);
      await check(page, "16-audit-filtered");
    } finally {
      await context.close();
    }
  });

  test("at 375 px every page fits the width and keeps its accessibility", { timeout: 120_000 }, async () => {
    ready();
    const { context, page } = await newPage({ width: 375 });
    const fits = () =>
      page.evaluate<boolean>("document.documentElement.scrollWidth <= document.documentElement.clientWidth");
    try {
      await page.goto(`${e2e.api}/register`);
      expect(await fits()).toBe(true);
      await check(page, "mobile-01-register");
      await logIn(page, ADMIN);
      const vmId = (await rowOf(page, "alice-vm").getAttribute("data-vm-row"))!;
      for (const [path, name] of [
        ["/", "mobile-02-vms"],
        [`/vms/${vmId}`, "mobile-03-vm-page"],
        ["/hosts", "mobile-04-hosts"],
        ["/ippools", "mobile-05-ippools"],
        ["/users", "mobile-06-users"],
        ["/audit", "mobile-07-audit"],
      ] as const) {
        await page.goto(`${e2e.api}${path}`);
        expect(await fits(), `${path} scrolls sideways at 375 px`).toBe(true);
        await check(page, name);
      }
    } finally {
      await context.close();
    }
  });
});
