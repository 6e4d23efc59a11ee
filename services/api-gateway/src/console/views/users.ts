import type { JSXNode } from "hono/jsx";
import type { Me, Page } from "../api-types.ts";
import { when } from "../format.ts";
import { html } from "../html.ts";
import { pager } from "./layout.ts";

export function usersPage(page: Page<Me>): JSXNode {
  return html`<div>
    <h1>Users</h1>
    <table class="list">
      <caption>Users (${page.total})</caption>
      <thead>
        <tr>
          <th scope="col">Username</th>
          <th scope="col">ID</th>
          <th scope="col">Email</th>
          <th scope="col">Name</th>
          <th scope="col">Role</th>
          <th scope="col">Active</th>
          <th scope="col">Joined</th>
        </tr>
      </thead>
      <tbody>
        ${page.items.map(
          (u) => html`<tr>
            <th scope="row" data-label="Username">${u.username}</th>
            <td data-label="ID">${String(u.id)}</td>
            <td data-label="Email">${u.email}</td>
            <td data-label="Name">${u.full_name ?? "—"}</td>
            <td data-label="Role">${u.is_superuser ? html`<span class="tag">superuser</span>` : "user"}</td>
            <td data-label="Active">${u.is_active ? "yes" : html`<span class="tag tag-warn">inactive</span>`}</td>
            <td data-label="Joined"><time datetime=${u.created_at}>${when(u.created_at)}</time></td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${pager(page.page, page.total_pages, (p) => `/users?page=${p}`)}
  </div>`;
}
