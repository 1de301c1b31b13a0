import { describe, expect, test } from 'vitest';
import applyConfig, { EduhubAlerts } from '../src/index.js';

describe('applyConfig', () => {
  test('appends EduhubAlerts to appExtras, keeping existing entries', () => {
    const Existing = () => null;
    const config = { settings: { appExtras: [{ match: '/foo', component: Existing }] } };
    const result = applyConfig(config);
    expect(result).toBe(config);
    expect(result.settings.appExtras).toEqual([
      { match: '/foo', component: Existing },
      { match: '', component: EduhubAlerts },
    ]);
  });

  test('works without appExtras and sets eduhubAlerts defaults', () => {
    const result = applyConfig({ settings: {} });
    expect(result.settings.appExtras).toEqual([{ match: '', component: EduhubAlerts }]);
    expect(result.settings.eduhubAlerts).toEqual({ topics: null, apiPath: null });
  });

  test('keeps settings the project already set', () => {
    const result = applyConfig({ settings: { eduhubAlerts: { topics: ['manual'] } } });
    expect(result.settings.eduhubAlerts).toEqual({ topics: ['manual'], apiPath: null });
  });
});
