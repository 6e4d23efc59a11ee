import type { JSXNode } from "hono/jsx";
import type { Me } from "../api-types.ts";
import { assetUrl } from "../assets.ts";
import { html, type Markup } from "../html.ts";
import type { Flash } from "../session.ts";

export type Section = "vms" | "hosts" | "ippools" | "users" | "audit";

export interface Shell {
  readonly title: string;
  readonly csrf: string;
  /** The signed-in user; absent on the login and registration pages. */
  readonly me?: Me | undefined;
  readonly section?: Section | undefined;
  readonly flash?: Flash | undefined;
  /** The page's `data-live-region`s follow the event stream (only this VM's events, when set). */
  readonly live?: { readonly vmId?: string } | undefined;
}

const SECTIONS: ReadonlyArray<{ id: Section; href: string; label: string; superuser: boolean }> = [
  { id: "vms", href: "/", label: "VMs", superuser: false },
  { id: "hosts", href: "/hosts", label: "Hosts", superuser: true },
  { id: "ippools", href: "/ippools", label: "IP pools", superuser: true },
  { id: "users", href: "/users", label: "Users", superuser: true },
  { id: "audit", href: "/audit", label: "Audit log", superuser: true },
];

/** A hidden field every form carries: this browser's CSRF token. */
export const csrfField = (csrf: string): JSXNode => html`<input type="hidden" name="_csrf" value=${csrf} />`;

function navigation(me: Me, current: Section | undefined): JSXNode {
  const links = SECTIONS.filter((s) => !s.superuser || me.is_superuser).map(
    (s) =>
      html`<li><a href=${s.href} aria-current=${s.id === current ? "page" : undefined}>${s.label}</a></li>`,
  );
  return html`<nav aria-label="Main"><ul class="nav">${links}</ul></nav>`;
}

function account(me: Me, csrf: string): JSXNode {
  return html`<div class="account">
    <span class="who">${me.name}${me.is_superuser ? html`<span class="tag">superuser</span>` : null}</span>
    <span class="live-indicator" data-live-indicator hidden></span>
    <form method="post" action="/logout" class="inline">
      ${csrfField(csrf)}
      <button type="submit" class="btn btn-quiet">Log out</button>
    </form>
  </div>`;
}

/** Every page: skip link, banner with navigation, one main landmark, messages for people and screen readers. */
export function layout(shell: Shell, content: Markup): JSXNode {
  return html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>${shell.title} · Mikrom</title>
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href=${assetUrl("console.css")} />
      <script src=${assetUrl("console.js")} defer></script>
    </head>
    <body data-live=${shell.live ? "/console/events" : undefined} data-vm-id=${shell.live?.vmId}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/">Mikrom</a>
        ${shell.me ? navigation(shell.me, shell.section) : null}
        ${shell.me ? account(shell.me, shell.csrf) : null}
      </header>
      <main id="main" tabindex="-1">
        ${
          shell.flash
            ? html`<p class=${`flash flash-${shell.flash.kind}`} role=${shell.flash.kind === "error" ? "alert" : "status"}>
                ${shell.flash.text}
              </p>`
            : null
        }
        <div id="alerts" class="alerts" role="alert"></div>
        <p id="announcer" class="visually-hidden" role="status" aria-live="polite"></p>
        ${content}
      </main>
    </body>
  </html>`;
}

/** A page of a paged list: "Page 2 of 5" and links to the neighbours, keeping the other query values. */
export function pager(
  page: number,
  totalPages: number,
  href: (page: number) => string,
  labels: { previous: string; next: string } = { previous: "Previous", next: "Next" },
): JSXNode | null {
  if (totalPages <= 1) return null;
  return html`<nav class="pager" aria-label="Pages">
    ${page > 1 ? html`<a href=${href(page - 1)} rel="prev">${labels.previous}</a>` : null}
    <span>Page ${page} of ${totalPages}</span>
    ${page < totalPages ? html`<a href=${href(page + 1)} rel="next">${labels.next}</a>` : null}
  </nav>`;
}

/** The console's one kind of list: a captioned table, a header row of column names, then the rows. */
export function listTable(caption: Markup, columns: ReadonlyArray<string | null>, rows: Markup): JSXNode {
  return html`<table class="list">
    <caption>${caption}</caption>
    <thead>
      <tr>
        ${columns.map((c) => (c === null ? null : html`<th scope="col">${c}</th>`))}
      </tr>
    </thead>
    <tbody>${rows}</tbody>
  </table>`;
}
