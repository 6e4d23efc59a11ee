import type { JSXNode } from "hono/jsx";
import type { Vm, VmEvent } from "../api-types.ts";
import { eventSummary, memory, when } from "../format.ts";
import { traceUrl } from "../grafana.ts";
import { html } from "../html.ts";
import { actions, hostOf, status } from "./vm-parts.ts";

/** A trace id: a link into Grafana when its address is configured, the bare id otherwise. */
export function trace(traceId: string | null, grafanaUrl: string | undefined): JSXNode | string {
  if (!traceId) return "—";
  const href = traceUrl(grafanaUrl, traceId);
  const short = html`<code title=${traceId}>${traceId.slice(0, 12)}…</code>`;
  return href
    ? html`<a href=${href} target="_blank" rel="noopener noreferrer">
        ${short}<span class="visually-hidden"> (the whole trace in Grafana, in a new tab)</span>
      </a>`
    : short;
}

function details(vm: Vm): JSXNode {
  const item = (term: string, value: unknown) => html`<div><dt>${term}</dt><dd>${value}</dd></div>`;
  return html`<dl class="details">
    ${item("Status", status(vm))}
    ${item("Address", vm.ip_address ?? "—")}
    ${item("Host", hostOf(vm))}
    ${item("Host status", vm.host_status ?? "—")}
    ${item("vCPUs", String(vm.vcpu_count))}
    ${item("Memory", memory(vm.memory_mb))}
    ${item("ID", html`<code>${vm.vm_id}</code>`)}
    ${item("Created", html`<time datetime=${vm.created_at}>${when(vm.created_at)}</time>`)}
    ${item("Updated", html`<time datetime=${vm.updated_at}>${when(vm.updated_at)}</time>`)}
    ${vm.description ? item("Description", vm.description) : null}
    ${vm.error_message ? item("Error", html`<span class="error-text">${vm.error_message}</span>`) : null}
  </dl>`;
}

function timeline(events: readonly VmEvent[], grafanaUrl: string | undefined): JSXNode {
  if (events.length === 0) return html`<p class="empty">No events recorded yet.</p>`;
  return html`<ol class="timeline">
    ${events.map(
      (e) => html`<li class=${e.type === "VmFailed" ? "failed" : undefined}>
        <time datetime=${e.recorded_at}>${when(e.recorded_at)}</time>
        <p class="what">${eventSummary(e)}</p>
        <p class="meta">
          <span class="type">${e.type}</span>
          ${e.actor?.user_name ? html`<span>by ${e.actor.user_name}</span>` : null}
          <span>trace ${trace(e.trace_id, grafanaUrl)}</span>
        </p>
      </li>`,
    )}
  </ol>`;
}

export function vmPage(
  vm: Vm,
  events: readonly VmEvent[],
  csrf: string,
  grafanaUrl: string | undefined,
): JSXNode {
  const back = `/vms/${vm.vm_id}`;
  return html`<div>
    <p class="crumbs"><a href="/">VMs</a> / <span>${vm.name}</span></p>
    <h1>${vm.name}</h1>
    <div id="vm-summary" data-live-region>
      ${actions(vm, csrf, back)}
      <section aria-labelledby="details-title" class="card">
        <h2 id="details-title">Details</h2>
        ${details(vm)}
      </section>
    </div>
    <section aria-labelledby="history-title" class="card">
      <h2 id="history-title">History</h2>
      <div id="vm-history" data-live-region>${timeline(events, grafanaUrl)}</div>
    </section>
  </div>`;
}
