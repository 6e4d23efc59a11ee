// Mikrom web console: progressive enhancement. Every page and form works without this script; with
// it, pages follow the event stream without reloading and operations show their progress in place.
(() => {
  const body = document.body;
  const alerts = document.getElementById("alerts");
  const announcer = document.getElementById("announcer");
  const indicator = document.querySelector("[data-live-indicator]");

  /** Says something to screen readers (the polite live region), once. */
  function announce(text) {
    if (!announcer) return;
    announcer.textContent = "";
    setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  }

  function showError(text) {
    if (!alerts) return;
    const p = document.createElement("p");
    p.className = "flash flash-error";
    p.textContent = text;
    alerts.replaceChildren(p);
  }

  function vmName(vmId) {
    const link = document.querySelector(`[data-vm-row="${CSS.escape(vmId)}"] a`);
    if (link) return link.textContent.trim();
    return body.dataset.vmId === vmId ? document.querySelector("h1")?.textContent.trim() : undefined;
  }

  // Live regions: on an event, fetch this page again and swap in its fresh regions. One fetch at a
  // time; events that arrive meanwhile cause one more.
  let refreshing = false;
  let again = false;

  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const res = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (res.redirected && new URL(res.url).pathname === "/login") {
        location.assign(res.url);
        return;
      }
      if (res.status === 404 && body.dataset.vmId) {
        // This VM is gone (deleted): back to the list.
        location.assign("/");
        return;
      }
      if (!res.ok) return;
      const fresh = new DOMParser().parseFromString(await res.text(), "text/html");
      const focused = document.activeElement;
      for (const region of document.querySelectorAll("[data-live-region]")) {
        const next = fresh.getElementById(region.id);
        if (!next) continue;
        const hadFocus = region.contains(focused) && focused !== region;
        const replacement = document.importNode(next, true);
        region.replaceWith(replacement);
        if (hadFocus) refocus(focused, replacement);
      }
      enhance(document);
    } catch {
      // The next event (or reconnect) refreshes again.
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        void refresh();
      }
    }
  }

  /** Keeps keyboard focus where it was: the same control, else another of the same VM's, else the region. */
  function refocus(previous, region) {
    const same = previous.id && document.getElementById(previous.id);
    if (same) return same.focus();
    const vmId = previous.id?.replace(/^[a-z]+-/, "");
    const sibling = vmId && region.querySelector(`button[id$="-${CSS.escape(vmId)}"]`);
    if (sibling) return sibling.focus();
    region.setAttribute("tabindex", "-1");
    region.focus();
  }

  function setIndicator(live) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.dataset.state = live ? "live" : "offline";
    indicator.textContent = live ? "Live" : "Reconnecting…";
  }

  if (body.dataset.live) {
    const only = body.dataset.vmId;
    const source = new EventSource(body.dataset.live);
    source.addEventListener("open", () => {
      setIndicator(true);
      // Catch up on what happened while the page loaded or the stream was down.
      void refresh();
    });
    source.addEventListener("error", () => setIndicator(false));
    source.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (only && event.vm_id !== only) return;
      const name = vmName(event.vm_id) ?? event.vm_id;
      if (event.type === "VmDeleted") announce(`${name} deleted`);
      else if (event.status === "running" || event.status === "stopped" || event.status === "error")
        announce(`${name} is ${event.status}`);
      void refresh();
    });
  }

  // Forms with data-action post in the background and show progress on their button.
  const VERBING = {
    create: "Creating",
    start: "Starting",
    stop: "Stopping",
    restart: "Restarting",
    delete: "Deleting",
  };

  async function submit(form, event) {
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button[type=submit]");
    const action = form.dataset.action;
    const data = new FormData(form);
    const name = action === "create" ? String(data.get("name")) : form.dataset.vm;
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
    alerts?.replaceChildren();
    announce(`${VERBING[action] ?? "Working on"} ${name}…`);
    try {
      const res = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams(data),
      });
      if (res.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        return;
      }
      const answer = await res.json().catch(() => ({}));
      if (!res.ok) {
        showError(answer.detail ?? `${res.status} ${res.statusText}`);
        return;
      }
      announce(answer.message ?? `${VERBING[action] ?? "Done:"} ${name}`);
      if (action === "create") {
        form.reset();
        const key = form.querySelector("[data-idempotency-key]");
        if (key && answer.next_idempotency_key) key.value = answer.next_idempotency_key;
        form.querySelector("input[name=name]")?.focus();
      }
      await refresh();
    } catch {
      showError("The console could not reach the server; check the connection and try again.");
    } finally {
      if (button?.isConnected) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    }
  }

  function enhance(root) {
    for (const form of root.querySelectorAll("form[data-action]")) {
      if (form.dataset.enhanced) continue;
      form.dataset.enhanced = "1";
      form.addEventListener("submit", (event) => void submit(form, event));
    }
  }

  enhance(document);
})();
