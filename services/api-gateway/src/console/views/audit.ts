import { ippoolEvents, provisionerEvents, vmEvents } from "@mikrom/contracts";
import type { JSXNode } from "hono/jsx";
import type { AuditEntry, Page } from "../api-types.ts";
import { when } from "../format.ts";
import { html } from "../html.ts";
import { listTable, pager } from "./layout.ts";
import { trace } from "./vm.ts";

/** The filters as the form holds them (times as `datetime-local`, read as UTC). */
export interface AuditFilters {
  readonly user_id?: string | undefined;
  readonly vm_id?: string | undefined;
  readonly type?: string | undefined;
  readonly from?: string | undefined;
  readonly to?: string | undefined;
}

/** Every event type the services publish, offered as the type filter's suggestions. */
const KNOWN_TYPES = [...new Set([...vmEvents, ...ippoolEvents, ...provisionerEvents].map((e) => e.type))];

function filtersForm(f: AuditFilters): JSXNode {
  const field = (id: keyof AuditFilters, label: string, attrs: Record<string, string> = {}) =>
    html`<div class="field">
      <label for=${`audit-${id}`}>${label}</label>
      <input id=${`audit-${id}`} name=${id} value=${f[id] ?? ""} ...${attrs} />
    </div>`;
  return html`<form method="get" action="/audit" class="card filters" aria-labelledby="filters-title">
    <h2 id="filters-title">Filters</h2>
    <div class="fields">
      ${field("type", "Event type", { list: "audit-types", autocomplete: "off" })}
      <datalist id="audit-types">${KNOWN_TYPES.map((t) => html`<option value=${t}></option>`)}</datalist>
      ${field("vm_id", "VM id", { placeholder: "srv-…", autocomplete: "off" })}
      ${field("user_id", "User id", { type: "number", min: "1", inputmode: "numeric" })}
      ${field("from", "From (UTC)", { type: "datetime-local", step: "1" })}
      ${field("to", "To (UTC)", { type: "datetime-local", step: "1" })}
    </div>
    <div class="actions">
      <button type="submit" class="btn btn-primary">Filter</button>
      <a class="btn btn-quiet" href="/audit">Clear</a>
    </div>
  </form>`;
}

function entryRow(e: AuditEntry, grafanaUrl: string | undefined): JSXNode {
  return html`<tr>
    <td data-label="Time"><time datetime=${e.recorded_at}>${when(e.recorded_at)}</time></td>
    <th scope="row" data-label="Type">${e.type}</th>
    <td data-label="Entity"><code>${e.context}/${e.entity_id}</code></td>
    <td data-label="VM">${e.vm_id ? html`<a href=${`/audit?vm_id=${encodeURIComponent(e.vm_id)}`}>${e.vm_id}</a>` : "—"}</td>
    <td data-label="User">${e.user_name ?? (e.user_id !== null ? String(e.user_id) : "—")}</td>
    <td data-label="Trace">${trace(e.trace_id, grafanaUrl)}</td>
    <td data-label="Data">
      <details><summary>Data<span class="visually-hidden"> of ${e.type} ${e.event_id}</span></summary><pre>${JSON.stringify(e.data, null, 2)}</pre></details>
    </td>
  </tr>`;
}

/** Newest first: the API pages oldest first, so the console starts at its last page and reverses it. */
export function auditPage(
  page: Page<AuditEntry>,
  filters: AuditFilters,
  href: (page: number) => string,
  grafanaUrl: string | undefined,
): JSXNode {
  const entries = [...page.items].reverse();
  return html`<div>
    <h1>Audit log</h1>
    ${filtersForm(filters)}
    ${
      entries.length === 0
        ? html`<p class="empty">No entries match.</p>`
        : listTable(
            `Entries (${page.total}), newest first`,
            ["Time", "Type", "Entity", "VM", "User", "Trace", "Data"],
            entries.map((e) => entryRow(e, grafanaUrl)),
          )
    }
    ${pager(page.page, page.total_pages, href, { previous: "Older", next: "Newer" })}
  </div>`;
}
