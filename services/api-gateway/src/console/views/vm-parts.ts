import type { JSXNode } from "hono/jsx";
import { IN_PROGRESS, type Vm, type VmStatus } from "../api-types.ts";
import { html } from "../html.ts";
import { csrfField } from "./layout.ts";

/** What the VM's status reads as, and a progress bar while an operation runs. */
export function status(vm: Pick<Vm, "vm_id" | "name" | "status">): JSXNode {
  const busy = IN_PROGRESS.has(vm.status);
  return html`<span class="status-cell">
    <span class=${`status status-${vm.status}`} data-vm-status=${vm.vm_id}>${vm.status}</span>
    ${busy ? html`<progress class="busy" aria-label=${`${vm.name}: ${vm.status}`}></progress>` : null}
  </span>`;
}

/** Where the VM's host stands, when it is on one. */
export function hostOf(vm: Pick<Vm, "host" | "host_status">): JSXNode | string {
  if (!vm.host) return "—";
  if (vm.host_status !== "unreachable") return vm.host;
  return html`<span>${vm.host} <span class="tag tag-warn">unreachable</span></span>`;
}

type Verb = "start" | "stop" | "restart" | "delete";

const LABELS: Record<Verb, string> = { start: "Start", stop: "Stop", restart: "Restart", delete: "Delete" };

/**
 * The operations worth offering from a status. Only a hint: the API decides, and what it refuses
 * comes back with its reason.
 */
const OFFERED: Record<VmStatus, readonly Verb[]> = {
  running: ["stop", "restart", "delete"],
  stopped: ["start", "delete"],
  error: ["start", "delete"],
  pending: ["delete"],
  provisioning: ["delete"],
  starting: ["delete"],
  stopping: ["delete"],
  restarting: ["delete"],
  deleting: [],
};

/** One small form per operation: it works without scripts, and the script adds progress. */
export function actions(vm: Pick<Vm, "vm_id" | "name" | "status">, csrf: string, back: string): JSXNode {
  const forms = OFFERED[vm.status].map(
    (verb) => html`<form
      method="post"
      action=${`/vms/${vm.vm_id}/${verb}`}
      class="inline"
      data-action=${verb}
      data-vm=${vm.name}
      data-confirm=${verb === "delete" ? `Delete ${vm.name}? Its address is given back; this cannot be undone.` : undefined}
    >
      ${csrfField(csrf)}
      <input type="hidden" name="back" value=${verb === "delete" ? "/" : back} />
      <button type="submit" id=${`${verb}-${vm.vm_id}`} class=${`btn ${verb === "delete" ? "btn-danger" : ""}`}>
        ${LABELS[verb]}<span class="visually-hidden"> ${vm.name}</span>
      </button>
    </form>`,
  );
  return html`<div class="actions">${forms}</div>`;
}
