import type { JSXNode } from "hono/jsx";
import { ago, memory, when } from "../format.ts";
import type { HostView } from "../hosts.ts";
import { html } from "../html.ts";
import { listTable } from "./layout.ts";

function stamp(iso: string | null, now: number): JSXNode | string {
  return iso ? html`<time datetime=${iso} title=${when(iso)}>${ago(iso, now)}</time>` : "—";
}

function state(h: HostView): JSXNode {
  if (h.stoppedAt) return html`<span class="tag tag-warn">stopped</span>`;
  if (h.reachable === false) return html`<span class="tag tag-warn">unreachable</span>`;
  if (h.reachable === true) return html`<span class="tag tag-ok">reachable</span>`;
  return html`<span class="tag">no VMs</span>`;
}

export function hostsPage(hosts: readonly HostView[], now: number, heartbeatWindowMin: number): JSXNode {
  const rows = hosts.map(
    (h) => html`<tr>
      <th scope="row" data-label="Host"><code>${h.id}</code></th>
      <td data-label="State">${state(h)}</td>
      <td data-label="Driver">${h.driver ?? "—"}</td>
      <td data-label="Capacity">
        ${h.vcpus !== null ? `${h.vcpus} vCPU` : "—"}${h.memoryMb !== null ? ` · ${memory(h.memoryMb)}` : ""}
      </td>
      <td data-label="VMs">${String(h.vms)}${h.runningVms !== null ? ` (host says ${h.runningVms} running)` : ""}</td>
      <td data-label="Last heartbeat">${stamp(h.lastHeartbeat, now)}</td>
      <td data-label="Registered">${stamp(h.registeredAt, now)}</td>
    </tr>`,
  );
  return html`<div>
    <h1>Hosts</h1>
    <p class="lede">
      What each provisioner host announced (driver, capacity, heartbeats), read from the audit log,
      and the VMs placed on it. Heartbeats are looked up over the last ${heartbeatWindowMin} minutes.
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
