import type { JSXNode } from "hono/jsx";
import type { Host } from "../api-types.ts";
import { ago, memory, when } from "../format.ts";
import { html } from "../html.ts";
import { listTable } from "./layout.ts";

function stamp(iso: string | null, now: number): JSXNode | string {
  return iso ? html`<time datetime=${iso} title=${when(iso)}>${ago(iso, now)}</time>` : "—";
}

function state(h: Host): JSXNode {
  if (h.status === "up") return html`<span class="tag tag-ok">up</span>`;
  // A host that said it stopped is unreachable too: say which.
  return html`<span class="tag tag-warn">${h.stopped_at && h.status === "unreachable" ? "stopped" : h.status}</span>`;
}

export function hostsPage(hosts: readonly Host[], now: number): JSXNode {
  const rows = hosts.map(
    (h) => html`<tr>
      <th scope="row" data-label="Host"><code>${h.id}</code></th>
      <td data-label="State">${state(h)}</td>
      <td data-label="Driver">${h.driver}</td>
      <td data-label="Capacity">${`${h.vcpus} vCPU · ${memory(h.memory_mb)}`}</td>
      <td data-label="VMs">${String(h.vms)}${h.running_vms !== null ? ` (host says ${h.running_vms} running)` : ""}</td>
      <td data-label="Last heartbeat">${stamp(h.last_seen_at, now)}</td>
      <td data-label="Registered">${stamp(h.registered_at, now)}</td>
    </tr>`,
  );
  return html`<div>
    <h1>Hosts</h1>
    <p class="lede">
      Each provisioner host as the control plane knows it: what it announced (driver, capacity), when
      it was last heard from, and the VMs placed on it.
    </p>
    <div id="hosts" data-live-region>
      ${
        hosts.length === 0
          ? html`<p class="empty">No host has announced itself yet.</p>`
          : listTable(
              `Hosts (${hosts.length})`,
              ["Host", "State", "Driver", "Capacity", "VMs", "Last heartbeat", "Registered"],
              rows,
            )
      }
    </div>
  </div>`;
}
