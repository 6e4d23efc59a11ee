import type { JSXNode } from "hono/jsx";
import type { Me, Page } from "../api-types.ts";
import { when } from "../format.ts";
import { html } from "../html.ts";
import { listTable, pager } from "./layout.ts";

export function usersPage(page: Page<Me>): JSXNode {
  return html`<div>
    <h1>Users</h1>
    ${listTable(
      `Users (${page.total})`,
      ["Username", "ID", "Email", "Name", "Role", "Active", "Joined"],
      page.items.map(
        (u) => html`<tr>
            <th scope="row" data-label="Username">${u.username}</th>
            <td data-label="ID">${String(u.id)}</td>
            <td data-label="Email">${u.email}</td>
            <td data-label="Name">${u.full_name ?? "—"}</td>
            <td data-label="Role">${u.is_superuser ? html`<span class="tag">superuser</span>` : "user"}</td>
            <td data-label="Active">${u.is_active ? "yes" : html`<span class="tag tag-warn">inactive</span>`}</td>
            <td data-label="Joined"><time datetime=${u.created_at}>${when(u.created_at)}</time></td>
          </tr>`,
      ),
    )}
    ${pager(page.page, page.total_pages, (p) => `/users?page=${p}`)}
  </div>`;
}
