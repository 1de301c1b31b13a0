// <EduhubAlerts /> with a real redux store, react-toastify's real toast and
// ToastContainer, the real @eduhub/alerts-client using jsdom's WebSocket,
// against a scripted Plone @alerts-token endpoint and sidecar on a free port
// (test/sidecar.js). Only Volto's own modules are stand-ins (vitest.config.js).
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { act, cleanup, render, screen, waitFor, within } from '@testing-library/react';
import { Provider } from 'react-redux';
import { createStore } from 'redux';
import { ToastContainer, toast } from 'react-toastify';
import config from '@plone/volto/registry';

import EduhubAlerts from '../src/components/EduhubAlerts';
import { renderToString } from 'react-dom/server';
import { safeLink, plainText, ToastPacer } from '../src/components/EduhubAlerts';
import { startSidecar } from './sidecar.js';

// Volto's userSession reducer, reduced to what the add-on reads.
function userSession(state = { token: null }, action) {
  switch (action.type) {
    case 'LOGIN':
      return { ...state, token: action.token };
    case 'LOGOUT':
      return { ...state, token: null };
    default:
      return state;
  }
}

function renderApp(token = null, props = {}) {
  const store = createStore((state = {}, action) => ({
    userSession: userSession(state.userSession, action),
  }));
  if (token) store.dispatch({ type: 'LOGIN', token });
  const view = render(
    <Provider store={store}>
      <EduhubAlerts {...props} />
      <ToastContainer />
    </Provider>,
  );
  return { store, ...view };
}

const ALERT = {
  id: 'a1',
  version: 1,
  topic: 'workflow.publish',
  severity: 'success',
  title: 'Published: Exam timetable',
  message: '**Jane** published <img src=x onerror="window.pwned=1"> the `timetable`',
  audience: ['user:jane'],
  routes: {},
  created_at: '2026-12-03T19:00:00Z',
};

let sidecar;

beforeEach(async () => {
  sidecar = await startSidecar();
  // Seamless mode on the sidecar's address: the token comes from
  // `${apiPath}/++api++/@alerts-token` and links to it are app paths.
  config.settings.apiPath = sidecar.origin;
  config.settings.publicURL = sidecar.origin;
});

afterEach(async () => {
  cleanup();
  await sidecar.close();
});

describe('EduhubAlerts', () => {
  test('logged out: renders nothing and connects nothing, then connects on login', async () => {
    const { container, store } = renderApp(null);
    await act(async () => {});
    expect(container.querySelector('.eduhub-alerts-status')).toBeNull();
    expect(screen.queryByRole('status')).toBeNull();
    expect(sidecar.tokenRequests).toHaveLength(0);
    expect(sidecar.connections).toHaveLength(0);

    act(() => store.dispatch({ type: 'LOGIN', token: 'jwt-jane' }));
    await waitFor(() => expect(sidecar.open()).toHaveLength(1));
  });

  test('logged in: fetches the token with the Bearer JWT, connects, subscribes, shows an alert as a toast', async () => {
    const success = vi.spyOn(toast, 'success');
    renderApp('jwt-jane');

    await waitFor(() => expect(screen.getByRole('status')).toHaveProperty('dataset.status', 'open'));
    expect(screen.getByRole('status').textContent).toBe('Live alerts on');

    expect(sidecar.tokenRequests).toEqual([
      { method: 'GET', url: '/++api++/@alerts-token', authorization: 'Bearer jwt-jane' },
    ]);
    expect(sidecar.connections).toHaveLength(1);
    const [connection] = sidecar.connections;
    expect(connection.protocol).toBe('eduhub-alerts.v1');
    expect(connection.token).toBe('sidecar-token-for-jwt-jane');
    expect(connection.origin).toBe('http://localhost:3000');
    expect(connection.frames[0]).toMatchObject({ type: 'subscribe', topics: ['*', '*.*', '*.*.*'] });

    sidecar.broadcast('1-0', { ...ALERT, url: `${sidecar.origin}/news/exam-timetable` });

    const title = await screen.findByText('Published: Exam timetable');
    const toastElement = title.closest('.toast-inner-content');
    expect(toastElement.dataset.kind).toBe('success');
    expect(success).toHaveBeenCalledTimes(1);
    expect(success.mock.calls[0][1]).toMatchObject({ toastId: 'eduhub-alert-1-0' });

    // Markdown as plain text: no HTML from the message reaches the DOM.
    const message = within(toastElement).getByText(/published/);
    expect(message.textContent).toBe('Jane published <img src=x onerror="window.pwned=1"> the timetable');
    expect(toastElement.querySelector('img')).toBeNull();
    expect(window.pwned).toBeUndefined();

    // The link to the object is an app path (flattenToAppURL).
    const link = within(toastElement).getByRole('link', { name: 'Open' });
    expect(link.getAttribute('href')).toBe('/news/exam-timetable');
  });

  test('severities map to Volto toast kinds; unsafe links are dropped, external ones kept', async () => {
    const error = vi.spyOn(toast, 'error');
    const warning = vi.spyOn(toast, 'warning');
    const info = vi.spyOn(toast, 'info');
    renderApp('jwt-jane');
    await waitFor(() => expect(screen.getByRole('status').dataset.status).toBe('open'));

    // A burst (as after a reconnect): every toast must show, see ToastPacer.
    sidecar.broadcast('2-0', { ...ALERT, id: 'a2', severity: 'critical', title: 'Import failed', url: 'javascript:alert(1)' });
    sidecar.broadcast('2-1', { ...ALERT, id: 'a3', severity: 'warning', title: 'Quota almost full', url: 'https://status.example.org/quota' });
    sidecar.broadcast('2-2', { ...ALERT, id: 'a4', severity: 'info', title: 'FYI', message: undefined, url: undefined });
    sidecar.broadcast('2-2', { ...ALERT, id: 'a4', severity: 'info', title: 'FYI', message: undefined, url: undefined });

    const critical = (await screen.findByText('Import failed')).closest('.toast-inner-content');
    expect(critical.dataset.kind).toBe('error');
    expect(within(critical).queryByRole('link')).toBeNull();
    expect(error.mock.calls[0][1]).toMatchObject({ autoClose: false });

    const external = (await screen.findByText('Quota almost full')).closest('.toast-inner-content');
    expect(external.dataset.kind).toBe('warning');
    expect(within(external).getByRole('link').getAttribute('href')).toBe('https://status.example.org/quota');

    await screen.findByText('FYI');
    // A repeated stream id is shown once.
    expect(info).toHaveBeenCalledTimes(1);
    expect(screen.getAllByText('FYI')).toHaveLength(1);
    expect(warning).toHaveBeenCalledTimes(1);
  });

  test('logout closes the socket and removes the live region', async () => {
    const { store } = renderApp('jwt-jane');
    await waitFor(() => expect(screen.getByRole('status').dataset.status).toBe('open'));

    act(() => store.dispatch({ type: 'LOGOUT' }));

    await waitFor(() => expect(sidecar.connections[0].closed).toBe(1000));
    expect(screen.queryByRole('status')).toBeNull();
    expect(sidecar.connections).toHaveLength(1); // no reconnect
  });

  test('a new session token replaces the connection', async () => {
    const { store } = renderApp('jwt-jane');
    await waitFor(() => expect(screen.getByRole('status').dataset.status).toBe('open'));

    act(() => store.dispatch({ type: 'LOGIN', token: 'jwt-jane-2' }));

    await waitFor(() => expect(sidecar.connections[0].closed).toBe(1000));
    await waitFor(() => expect(sidecar.open()).toHaveLength(1));
    expect(sidecar.open()[0].token).toBe('sidecar-token-for-jwt-jane-2');
    expect(sidecar.tokenRequests.map((r) => r.authorization)).toEqual([
      'Bearer jwt-jane',
      'Bearer jwt-jane-2',
    ]);
  });

  test('unmount closes the socket', async () => {
    const { unmount } = renderApp('jwt-jane');
    await waitFor(() => expect(sidecar.open()).toHaveLength(1));
    unmount();
    await waitFor(() => expect(sidecar.connections[0].closed).toBe(1000));
  });

  test('a JWT Plone refuses: status unauthorized and no WebSocket', async () => {
    renderApp('jwt-expired');
    await waitFor(() => expect(screen.getByRole('status').dataset.status).toBe('unauthorized'));
    expect(sidecar.tokenRequests).toEqual([
      { method: 'GET', url: '/++api++/@alerts-token', authorization: 'Bearer jwt-expired' },
    ]);
    expect(sidecar.connections).toHaveLength(0);
  });

  test('server-side rendering connects nothing', async () => {
    const store = createStore(() => ({ userSession: { token: 'jwt-jane' } }));
    const html = renderToString(
      <Provider store={store}>
        <EduhubAlerts />
      </Provider>,
    );
    expect(html).toContain('eduhub-alerts-status');
    await act(async () => {});
    expect(sidecar.tokenRequests).toHaveLength(0);
    expect(sidecar.connections).toHaveLength(0);
  });

  test('props override the API path and topics', async () => {
    config.settings.apiPath = 'http://plone.invalid:1';
    renderApp('jwt-jane', { apiPath: `${sidecar.origin}/`, topics: ['workflow.*'] });
    await waitFor(() => expect(screen.getByRole('status').dataset.status).toBe('open'));
    expect(sidecar.tokenRequests[0].url).toBe('/++api++/@alerts-token');
    expect(sidecar.connections[0].frames[0]).toMatchObject({ type: 'subscribe', topics: ['workflow.*'] });
  });
});

describe('helpers', () => {
  test('safeLink keeps http(s), flattens site URLs, drops the rest', () => {
    expect(safeLink(`${config.settings.apiPath}/a/b`)).toBe('/a/b');
    expect(safeLink('https://example.org/x')).toBe('https://example.org/x');
    expect(safeLink('javascript:alert(1)')).toBeNull();
    expect(safeLink('data:text/html,<b>x</b>')).toBeNull();
    expect(safeLink('/relative')).toBeNull();
    expect(safeLink(undefined)).toBeNull();
  });

  test('ToastPacer shows the next toast once the previous is active, or after maxWait', () => {
    vi.useFakeTimers();
    try {
      const shown = [];
      const active = new Set();
      const pacer = new ToastPacer({
        show: (item) => shown.push(item.options.toastId),
        isActive: (id) => active.has(id),
        poll: 10,
        maxWait: 100,
      });
      pacer.push({ options: { toastId: 'a' } });
      pacer.push({ options: { toastId: 'b' } });
      pacer.push({ options: { toastId: 'c' } });
      expect(shown).toEqual(['a']);
      vi.advanceTimersByTime(50);
      expect(shown).toEqual(['a']);
      active.add('a');
      vi.advanceTimersByTime(10);
      expect(shown).toEqual(['a', 'b']);
      vi.advanceTimersByTime(100); // 'b' never becomes active: go on anyway
      expect(shown).toEqual(['a', 'b', 'c']);
      pacer.cancel();
      pacer.push({ options: { toastId: 'd' } });
      expect(shown).toEqual(['a', 'b', 'c', 'd']);
      pacer.cancel();
      vi.advanceTimersByTime(1000);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  test('plainText drops Markdown emphasis', () => {
    expect(plainText('**a** _b_ `c`')).toBe('a b c');
    expect(plainText(undefined)).toBe('');
  });
});
