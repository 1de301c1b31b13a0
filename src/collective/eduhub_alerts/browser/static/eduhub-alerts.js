/*
 * EduHub Alerts for Plone Classic UI: live alerts as Bootstrap 5 toasts.
 *
 * A classic script (Plone's bundles are not modules) that imports the
 * framework-free client as an ES module from the same resource folder.
 * Loaded for logged-in users only (the bundle's expression).
 */
(function () {
  "use strict";

  // Only set while the script first runs: where to find alerts-client.js.
  const SCRIPT_SRC = document.currentScript ? document.currentScript.src : "";

  const SEVERITY_LABELS = {
    info: "Info",
    success: "Success",
    warning: "Warning",
    error: "Error",
    critical: "Critical",
  };
  const STAYING = new Set(["error", "critical"]); // shown until closed
  const DISMISS_AFTER_MS = 8000;
  const MAX_VISIBLE = 5;
  const STATUS_TEXT = {
    connecting: "Connecting to live alerts…",
    open: "Live alerts on",
    reconnecting: "Reconnecting to live alerts…",
    closed: "Live alerts off",
    muted: "Live alerts muted",
    unauthorized: "Live alerts unavailable",
    forbidden: "Live alerts not allowed on this address",
  };

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Markdown is shown as text: emphasis markers are dropped, nothing is
  // ever parsed as HTML.
  function plainText(markdown) {
    return (markdown || "").replace(/(\*\*|__|\*|_|`)/g, "");
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function buildRegion() {
    const region = element("section", "eduhub-alerts toast-container position-fixed bottom-0 end-0 p-3");
    region.setAttribute("aria-label", "Live alerts");
    const status = element("div", "eduhub-alerts-status badge text-bg-secondary");
    status.setAttribute("role", "status");
    status.dataset.status = "connecting";
    status.textContent = STATUS_TEXT.connecting;
    // Screen readers announce new alerts from this polite live region.
    const stack = element("div", "eduhub-alerts-stack");
    stack.setAttribute("aria-live", "polite");
    stack.setAttribute("aria-relevant", "additions");
    // The user's own switch, kept in their member data (@alerts-preferences).
    const toggle = element("button", "eduhub-alerts-toggle btn btn-sm btn-outline-secondary ms-2", "Mute");
    toggle.type = "button";
    toggle.setAttribute("aria-pressed", "false");
    const bar = element("div", "eduhub-alerts-bar");
    bar.append(status, toggle);
    region.append(stack, bar);
    document.body.append(region);
    return { region, stack, status, toggle };
  }

  function showToast(stack, alert) {
    const severity = SEVERITY_LABELS[alert.severity] ? alert.severity : "info";
    const toast = element("div", `toast show eduhub-alert eduhub-alert-${severity}`);
    toast.setAttribute("role", STAYING.has(severity) ? "alert" : "status");
    toast.dataset.alertId = alert.id;

    const header = element("div", "toast-header");
    header.append(
      element("span", `eduhub-alert-severity badge me-2`, SEVERITY_LABELS[severity]),
      element("strong", "me-auto eduhub-alert-title", alert.title)
    );
    const close = element("button", "btn-close");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    header.append(close);

    const body = element("div", "toast-body");
    if (alert.message) body.append(element("p", "mb-1 eduhub-alert-message", plainText(alert.message)));
    const href = alert.url && safeUrl(alert.url);
    if (href) {
      const link = element("a", "eduhub-alert-link", "Open");
      link.href = href;
      body.append(link);
    }
    toast.append(header, body);

    let timer = null;
    const remove = () => {
      clearTimeout(timer);
      toast.remove();
    };
    const schedule = () => {
      if (!STAYING.has(severity)) timer = setTimeout(remove, DISMISS_AFTER_MS);
    };
    // Pause while the pointer or the keyboard focus is on the toast.
    toast.addEventListener("mouseenter", () => clearTimeout(timer));
    toast.addEventListener("mouseleave", schedule);
    toast.addEventListener("focusin", () => clearTimeout(timer));
    toast.addEventListener("focusout", schedule);
    close.addEventListener("click", remove);

    stack.prepend(toast);
    while (stack.children.length > MAX_VISIBLE) stack.lastElementChild.remove();
    schedule();
  }

  async function setMuted(portalUrl, muted) {
    const response = await fetch(`${portalUrl}/@alerts-preferences`, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ muted }),
    });
    if (!response.ok) throw new Error(`@alerts-preferences answered ${response.status}`);
  }

  function showStatus(status, detail) {
    status.dataset.status = detail.status;
    status.textContent = STATUS_TEXT[detail.status] || detail.status;
    status.className = `eduhub-alerts-status badge ${
      detail.status === "open" ? "text-bg-success" : "text-bg-secondary"
    }`;
  }

  async function start() {
    const portalUrl = document.body.dataset.portalUrl;
    if (!portalUrl || window.eduhubAlerts) return;
    const base = SCRIPT_SRC
      ? SCRIPT_SRC.replace(/[^/]*$/, "")
      : `${portalUrl}/++plone++collective.eduhub_alerts/`;
    const { AlertsClient } = await import(`${base}alerts-client.js`);
    const { stack, status, toggle } = buildRegion();
    const client = new AlertsClient({ tokenUrl: `${portalUrl}/@alerts-token` });
    client.addEventListener("alert", (event) => showToast(stack, event.detail.alert));
    client.addEventListener("status", (event) => {
      showStatus(status, event.detail);
      const muted = event.detail.status === "muted";
      toggle.textContent = muted ? "Unmute" : "Mute";
      toggle.setAttribute("aria-pressed", String(muted));
    });
    toggle.addEventListener("click", async () => {
      const mute = toggle.getAttribute("aria-pressed") !== "true";
      toggle.disabled = true;
      try {
        await setMuted(portalUrl, mute);
        if (mute) {
          client.close();
          showStatus(status, { status: "muted" });
          toggle.textContent = "Unmute";
          toggle.setAttribute("aria-pressed", "true");
        } else {
          client.start();
        }
      } finally {
        toggle.disabled = false;
      }
    });
    window.eduhubAlerts = client; // for other scripts: subscribe(), close()
    client.start();
  }

  const run = () => start().catch((error) => console.error("EduHub Alerts:", error));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", run, { once: true });
  } else {
    run();
  }
})();
