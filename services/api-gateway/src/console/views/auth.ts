import type { JSXNode } from "hono/jsx";
import { html } from "../html.ts";
import { csrfField } from "./layout.ts";

export function loginPage(csrf: string, next: string, login = "", error?: string): JSXNode {
  return html`<div class="narrow">
    <h1>Log in</h1>
    <form method="post" action="/login" class="card">
      ${error ? html`<p class="flash flash-error" role="alert" id="login-error">${error}</p>` : null}
      ${csrfField(csrf)}
      <input type="hidden" name="next" value=${next} />
      <div class="field">
        <label for="login">Email or username</label>
        <input id="login" name="username" value=${login} required autocomplete="username" autofocus=${!login} />
      </div>
      <div class="field">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" required autocomplete="current-password" autofocus=${Boolean(login)} />
      </div>
      <button type="submit" class="btn btn-primary">Log in</button>
    </form>
    <p>No account yet? <a href="/register">Create one</a>.</p>
  </div>`;
}

export interface RegisterValues {
  readonly email?: string | undefined;
  readonly name?: string | undefined;
  readonly invite?: string | undefined;
}

export function registerPage(csrf: string, values: RegisterValues = {}, error?: string): JSXNode {
  return html`<div class="narrow">
    <h1>Create an account</h1>
    <form method="post" action="/register" class="card">
      ${error ? html`<p class="flash flash-error" role="alert">${error}</p>` : null}
      ${csrfField(csrf)}
      <div class="field">
        <label for="email">Email</label>
        <input id="email" name="email" type="email" value=${values.email ?? ""} required autocomplete="email" />
      </div>
      <div class="field">
        <label for="name">Name <span class="optional">(optional)</span></label>
        <input id="name" name="name" value=${values.name ?? ""} autocomplete="name" maxlength="255" />
      </div>
      <div class="field">
        <label for="new-password">Password</label>
        <input
          id="new-password"
          name="password"
          type="password"
          required
          minlength="8"
          maxlength="100"
          autocomplete="new-password"
          aria-describedby="password-hint"
        />
        <small id="password-hint">8 to 100 characters.</small>
      </div>
      <div class="field">
        <label for="invite">Invitation <span class="optional">(if you were given one)</span></label>
        <input id="invite" name="invite" value=${values.invite ?? ""} autocomplete="off" maxlength="200" />
      </div>
      <button type="submit" class="btn btn-primary">Create account</button>
    </form>
    <p>Have an account? <a href="/login">Log in</a>.</p>
  </div>`;
}

export function errorPage(status: number, detail: string): JSXNode {
  const title =
    status === 404
      ? "Not found"
      : status === 403
        ? "Not allowed"
        : status >= 500
          ? "Something failed"
          : "That did not work";
  return html`<div class="narrow">
    <h1>${title}</h1>
    <p class="flash flash-error">${detail}</p>
    <p><a href="/">Back to your VMs</a></p>
  </div>`;
}
