import { randomUUID } from "node:crypto";
import type { Context, Hono } from "hono";
import type { AppEnv } from "../../http/env.ts";
import { Problem, problemResponse } from "../../http/problem.ts";
import { ApiError } from "../api.ts";
import type { Page, Vm, VmAccepted, VmEvent } from "../api-types.ts";
import { localPath } from "../format.ts";
import { renderPage } from "../html.ts";
import { layout } from "../views/layout.ts";
import { vmPage } from "../views/vm.ts";
import { vmsPage } from "../views/vms.ts";
import { type ConsoleDeps, formOf, pageParam, shellOf, signedIn, wantsJson } from "./context.ts";

const VERBS = new Set(["start", "stop", "restart", "delete"]);
const PAGE_SIZE = 20;

/** `5` from a form field, undefined when left empty (the API's default applies). */
const intField = (raw: string | undefined): number | undefined => (raw?.trim() ? Number(raw) : undefined);

/** The VM list, a VM's page, and the forms that create and operate VMs, each one call to the API. */
export function vmPages(app: Hono<AppEnv>, deps: ConsoleDeps): void {
  const { api, sessions } = deps;

  /** The answer to a form: JSON for the console's script, else back to the page with a message. */
  function answered(c: Context<AppEnv>, back: string, message: string, extra: Record<string, unknown> = {}) {
    if (wantsJson(c)) return c.json({ ok: true, message, ...extra });
    sessions.flash(c, { kind: "info", text: message });
    return c.redirect(back, 303);
  }

  function refused(c: Context<AppEnv>, back: string, error: unknown) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    if (wantsJson(c))
      return problemResponse(c, new Problem(error.status as Problem["status"], error.message));
    sessions.flash(c, { kind: "error", text: error.message });
    return c.redirect(back, 303);
  }

  app.get("/", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const page = pageParam(c.req.query("page"));
    const list = await api.get<Page<Vm>>(c, `/api/v1/vms?page=${page}&page_size=${PAGE_SIZE}`, token);
    const shell = shellOf(c, deps, "Virtual machines", me, { section: "vms", live: {} });
    const form = { csrf: shell.csrf, idempotencyKey: randomUUID() };
    return renderPage(c, layout(shell, vmsPage(list, form, me.is_superuser)));
  });

  app.post("/vms", async (c) => {
    const form = await formOf(c);
    sessions.verify(c, form._csrf);
    const { token } = await signedIn(c, deps);
    const body = {
      name: form.name?.trim() ?? "",
      vcpu_count: intField(form.vcpu_count),
      memory_mb: intField(form.memory_mb),
      ...(form.description?.trim() && { description: form.description.trim() }),
    };
    try {
      const vm = await api.json<Vm | VmAccepted>(c, "POST", "/api/v1/vms", {
        token,
        body,
        idempotencyKey: form.idempotency_key || undefined,
      });
      return answered(c, "/", `Creating ${body.name}…`, {
        vm_id: vm.vm_id,
        status: vm.status,
        next_idempotency_key: randomUUID(),
      });
    } catch (error) {
      return refused(c, "/", error);
    }
  });

  app.post("/vms/:vm_id/:verb", async (c) => {
    const verb = c.req.param("verb");
    if (!VERBS.has(verb)) throw new Problem(404, `No route for POST ${c.req.path}`);
    const form = await formOf(c);
    sessions.verify(c, form._csrf);
    const { token } = await signedIn(c, deps);
    const vmId = encodeURIComponent(c.req.param("vm_id"));
    const back = localPath(form.back);
    try {
      const accepted =
        verb === "delete"
          ? await api.json<VmAccepted>(c, "DELETE", `/api/v1/vms/${vmId}`, { token })
          : await api.json<VmAccepted>(c, "POST", `/api/v1/vms/${vmId}/${verb}`, { token });
      return answered(c, back, accepted.message, { vm_id: accepted.vm_id, status: accepted.status });
    } catch (error) {
      return refused(c, back, error);
    }
  });

  app.get("/vms/:vm_id", async (c) => {
    const { token, me } = await signedIn(c, deps);
    const vmId = encodeURIComponent(c.req.param("vm_id"));
    const [vm, history] = await Promise.all([
      api.get<Vm>(c, `/api/v1/vms/${vmId}`, token),
      api.get<{ events: VmEvent[] }>(c, `/api/v1/vms/${vmId}/events`, token),
    ]);
    const shell = shellOf(c, deps, vm.name, me, { section: "vms", live: { vmId: vm.vm_id } });
    return renderPage(c, layout(shell, vmPage(vm, history.events, shell.csrf, deps.grafanaUrl)));
  });
}
