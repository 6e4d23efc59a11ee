import type { JSXNode } from "hono/jsx";
import type { Pool, PoolStats, Vm } from "../api-types.ts";
import { html } from "../html.ts";

export interface PoolCard {
  readonly pool: Pool;
  readonly stats: PoolStats | undefined;
  readonly allocations: readonly Vm[];
}

function usage(stats: PoolStats | undefined): JSXNode {
  if (!stats) return html`<p>No usage figures.</p>`;
  const id = `usage-${stats.pool_id}`;
  return html`<div class="usage">
    <label for=${id}>${stats.allocated} of ${stats.total} addresses in use (${stats.usage_percent.toFixed(1)}%)</label>
    <meter
      id=${id}
      min="0"
      max=${String(Math.max(1, stats.total))}
      value=${String(stats.allocated)}
      high=${String(Math.ceil(stats.total * 0.8))}
      optimum="0"
    ></meter>
  </div>`;
}

function allocations(card: PoolCard): JSXNode {
  if (card.allocations.length === 0)
    return html`<p class="empty">No address of this pool is held by a VM.</p>`;
  return html`<table class="list compact">
    <caption>Addresses held (${card.allocations.length})</caption>
    <thead>
      <tr><th scope="col">Address</th><th scope="col">VM</th><th scope="col">Status</th><th scope="col">Owner (user id)</th></tr>
    </thead>
    <tbody>
      ${card.allocations.map(
        (vm) => html`<tr>
          <th scope="row" data-label="Address"><code>${vm.ip_address}</code></th>
          <td data-label="VM"><a href=${`/vms/${vm.vm_id}`}>${vm.name}</a></td>
          <td data-label="Status">${vm.status}</td>
          <td data-label="Owner">${String(vm.user_id)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

export function ippoolsPage(cards: readonly PoolCard[], vmsShown: number, vmsTotal: number): JSXNode {
  return html`<div>
    <h1>IP pools</h1>
    ${
      vmsShown < vmsTotal
        ? html`<p class="lede">Allocations are read from the first ${vmsShown} of ${vmsTotal} VMs.</p>`
        : null
    }
    <div id="pools" data-live-region>
      ${cards.map(
        (card) => html`<section class="card" aria-labelledby=${`pool-${card.pool.id}`}>
          <h2 id=${`pool-${card.pool.id}`}>
            ${card.pool.name} ${card.pool.is_active ? null : html`<span class="tag tag-warn">inactive</span>`}
          </h2>
          <dl class="details">
            <div><dt>CIDR</dt><dd><code>${card.pool.cidr}</code></dd></div>
            <div><dt>Range</dt><dd><code>${card.pool.start_ip}</code> – <code>${card.pool.end_ip}</code></dd></div>
            <div><dt>Gateway</dt><dd><code>${card.pool.gateway}</code></dd></div>
            ${card.pool.description ? html`<div><dt>Description</dt><dd>${card.pool.description}</dd></div>` : null}
          </dl>
          ${usage(card.stats)} ${allocations(card)}
        </section>`,
      )}
    </div>
  </div>`;
}
