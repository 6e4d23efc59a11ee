import type { JSXNode } from "hono/jsx";
import type { Page, Vm } from "../api-types.ts";
import { memory } from "../format.ts";
import { html } from "../html.ts";
import { csrfField, listTable, pager } from "./layout.ts";
import { actions, hostOf, status } from "./vm-parts.ts";

const MEMORY_CHOICES = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

export interface CreateForm {
  readonly csrf: string;
  /** Makes a resubmitted form (a double click, a retried request) create one VM, not two. */
  readonly idempotencyKey: string;
}

function createForm(form: CreateForm): JSXNode {
  return html`<form method="post" action="/vms" class="card create" data-action="create" aria-labelledby="create-title">
    <h2 id="create-title">Create a VM</h2>
    ${csrfField(form.csrf)}
    <input type="hidden" name="idempotency_key" value=${form.idempotencyKey} data-idempotency-key />
    <div class="fields">
      <div class="field">
        <label for="vm-name">Name</label>
        <input
          id="vm-name"
          name="name"
          required
          maxlength="64"
          pattern="[a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?"
          autocomplete="off"
          aria-describedby="vm-name-hint"
        />
        <small id="vm-name-hint">Letters, digits and dashes; not starting or ending with a dash.</small>
      </div>
      <div class="field">
        <label for="vm-vcpus">vCPUs</label>
        <input id="vm-vcpus" name="vcpu_count" type="number" min="1" max="32" value="1" required />
      </div>
      <div class="field">
        <label for="vm-memory">Memory</label>
        <select id="vm-memory" name="memory_mb">
          ${MEMORY_CHOICES.map((mb) => html`<option value=${String(mb)} selected=${mb === 512}>${memory(mb)}</option>`)}
        </select>
      </div>
      <div class="field field-wide">
        <label for="vm-description">Description <span class="optional">(optional)</span></label>
        <input id="vm-description" name="description" maxlength="500" autocomplete="off" />
      </div>
    </div>
    <button type="submit" class="btn btn-primary">Create VM</button>
  </form>`;
}

function row(vm: Vm, csrf: string, showOwner: boolean): JSXNode {
  return html`<tr data-vm-row=${vm.vm_id}>
    <th scope="row" data-label="Name"><a href=${`/vms/${vm.vm_id}`}>${vm.name}</a></th>
    <td data-label="Status">${status(vm)}</td>
    <td data-label="Address">${vm.ip_address ?? "—"}</td>
    <td data-label="Host">${hostOf(vm)}</td>
    <td data-label="Size">${vm.vcpu_count} vCPU · ${memory(vm.memory_mb)}</td>
    ${showOwner ? html`<td data-label="Owner">${String(vm.user_id)}</td>` : null}
    <td data-label="Actions">${actions(vm, csrf, "/")}</td>
  </tr>`;
}

/** The VM list: live (every event of the user's VMs refreshes it) and paged as the API pages. */
export function vmList(page: Page<Vm>, csrf: string, showOwner: boolean): JSXNode {
  const table =
    page.items.length === 0
      ? html`<p class="empty">No VMs yet. Create one above; it shows here as it starts.</p>`
      : listTable(
          `${showOwner ? "All VMs" : "Your VMs"} (${page.total})`,
          ["Name", "Status", "Address", "Host", "Size", showOwner ? "Owner (user id)" : null, "Actions"],
          page.items.map((vm) => row(vm, csrf, showOwner)),
        );
  return html`<div id="vm-list" data-live-region>
    ${table} ${pager(page.page, page.total_pages, (p) => `/?page=${p}`)}
  </div>`;
}

export function vmsPage(page: Page<Vm>, form: CreateForm, showOwner: boolean): JSXNode {
  return html`<div>
    <h1>Virtual machines</h1>
    ${createForm(form)}
    <section aria-labelledby="list-title">
      <h2 id="list-title" class="visually-hidden">VM list</h2>
      ${vmList(page, form.csrf, showOwner)}
    </section>
  </div>`;
}
