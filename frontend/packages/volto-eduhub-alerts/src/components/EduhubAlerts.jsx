/**
 * Live EduHub Alerts for logged-in Volto users, shown as Volto toasts.
 *
 * Mounted on every page by applyConfig through `config.settings.appExtras`.
 * While the Volto session has a token (`state.userSession.token`) it runs one
 * AlertsClient from @eduhub/alerts-client: the client fetches a sidecar
 * token from Plone's `@alerts-token` with the user's JWT as a Bearer header,
 * opens the WebSocket, subscribes, refreshes and reconnects. On logout, on a
 * new token and on unmount the client is closed.
 *
 * Renders only a visually hidden live region with the connection state.
 */
import React, { useEffect, useState } from 'react';
import { useSelector } from 'react-redux';
import { toast } from 'react-toastify';
import { Toast, UniversalLink } from '@plone/volto/components';
import { flattenToAppURL } from '@plone/volto/helpers';
import config from '@plone/volto/registry';
import { AlertsClient, fetchTokenFrom } from '@eduhub/alerts-client';

/** Alert severity -> Volto Toast kind (and react-toastify method). */
export const TOAST_KIND = {
  info: 'info',
  success: 'success',
  warning: 'warning',
  error: 'error',
  critical: 'error',
};

const STATUS_TEXT = {
  connecting: 'Connecting to live alerts…',
  open: 'Live alerts on',
  reconnecting: 'Reconnecting to live alerts…',
  closed: 'Live alerts off',
  unauthorized: 'Live alerts unavailable',
  forbidden: 'Live alerts not allowed on this address',
};

const VISUALLY_HIDDEN = {
  position: 'absolute',
  width: '1px',
  height: '1px',
  padding: 0,
  margin: '-1px',
  overflow: 'hidden',
  clip: 'rect(0, 0, 0, 0)',
  whiteSpace: 'nowrap',
  border: 0,
};

/** Markdown shown as text: emphasis markers dropped, never parsed as HTML. */
export function plainText(markdown) {
  return (markdown || '').replace(/(\*\*|__|\*|_|`)/g, '');
}

/**
 * An http(s) URL made relative to the Volto app when it points at the site
 * (flattenToAppURL), or null for anything else (javascript:, data:, junk).
 */
export function safeLink(url) {
  if (!url || typeof url !== 'string') return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  return flattenToAppURL(parsed.href);
}

/** The Volto Toast element and react-toastify options for one alert. */
export function toastFor(id, alert) {
  const kind = TOAST_KIND[alert.severity] || 'info';
  const href = safeLink(alert.url);
  const text = plainText(alert.message);
  const content = (
    <div className="eduhub-alert" data-alert-id={alert.id}>
      {text && <p className="eduhub-alert-message">{text}</p>}
      {href && (
        <UniversalLink className="eduhub-alert-link" href={href}>
          Open
        </UniversalLink>
      )}
    </div>
  );
  return {
    kind,
    element: (
      <Toast {...{ [kind]: true }} title={alert.title || ''} content={content} />
    ),
    options: {
      toastId: `eduhub-alert-${id}`, // a repeat never shows twice
      autoClose: alert.severity === 'critical' ? false : undefined,
    },
  };
}

/**
 * Shows toasts one after the other: the next only once react-toastify has
 * the previous one on screen (or after `maxWait` ms).
 *
 * react-toastify 5 (Volto 18's) appends a toast with
 * `setState({toast: [...this.state.toast, id]})`; under React 18's
 * concurrent root (Volto's hydrateRoot) toasts dispatched before the
 * container re-rendered overwrite each other and all but the last are lost,
 * e.g. the burst of alerts replayed after a reconnect. Pacing avoids that and
 * costs nothing with react-toastify versions that do not need it.
 */
export class ToastPacer {
  constructor({ show, isActive, poll = 25, maxWait = 1000 }) {
    this.show = show;
    this.isActive = isActive;
    this.poll = poll;
    this.maxWait = maxWait;
    this.pending = [];
    this.timer = null;
    this.waited = 0;
  }

  push(item) {
    this.pending.push(item);
    if (this.pending.length === 1) this._showHead();
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
  }

  _showHead() {
    const head = this.pending[0];
    this.show(head);
    this.waited = 0;
    this._check();
  }

  _check() {
    const head = this.pending[0];
    if (this.isActive(head.options.toastId) || this.waited >= this.maxWait) {
      this.pending.shift();
      if (this.pending.length) this._showHead();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.waited += this.poll;
      this._check();
    }, this.poll);
  }
}

function tokenUrl(apiPath) {
  const suffix = config.settings?.legacyTraverse ? '' : '/++api++';
  return `${(apiPath || '').replace(/\/$/, '')}${suffix}/@alerts-token`;
}

const EduhubAlerts = ({ apiPath, topics, WebSocket }) => {
  const token = useSelector((state) => state.userSession?.token);
  const [status, setStatus] = useState(null);
  const settings = config.settings?.eduhubAlerts || {};
  const base = apiPath || settings.apiPath || config.settings?.apiPath || '';
  const wanted = topics || settings.topics || null;
  const topicsKey = wanted ? wanted.join(' ') : '';

  useEffect(() => {
    if (!token) return undefined;
    const options = {
      fetchToken: fetchTokenFrom(tokenUrl(base), {
        headers: { Authorization: `Bearer ${token}` },
      }),
    };
    if (topicsKey) options.topics = topicsKey.split(' ');
    if (WebSocket) options.WebSocket = WebSocket;
    const client = new AlertsClient(options);
    const pacer = new ToastPacer({
      show: ({ kind, element, options: toastOptions }) =>
        toast[kind](element, toastOptions),
      isActive: (id) => toast.isActive(id),
    });
    client.addEventListener('alert', ({ detail }) => {
      pacer.push(toastFor(detail.id, detail.alert));
    });
    client.addEventListener('status', ({ detail }) => setStatus(detail.status));
    client.start();
    return () => {
      client.close();
      pacer.cancel();
      setStatus(null);
    };
  }, [token, base, topicsKey, WebSocket]);

  if (!token) return null;
  return (
    <div
      className="eduhub-alerts-status"
      role="status"
      aria-live="polite"
      data-status={status || 'closed'}
      style={VISUALLY_HIDDEN}
    >
      {STATUS_TEXT[status] || ''}
    </div>
  );
};

export default EduhubAlerts;
