import EduhubAlerts from './components/EduhubAlerts';

export { EduhubAlerts };
export {
  toastFor,
  plainText,
  safeLink,
  ToastPacer,
  TOAST_KIND,
} from './components/EduhubAlerts';

/**
 * Volto add-on configuration: mounts <EduhubAlerts /> on every page through
 * `config.settings.appExtras` (keeping the entries already there) and sets
 * the defaults of `config.settings.eduhubAlerts` without overriding a value
 * the project already set.
 */
export default function applyConfig(config) {
  config.settings = config.settings || {};
  config.settings.appExtras = [
    ...(config.settings.appExtras || []),
    { match: '', component: EduhubAlerts },
  ];
  config.settings.eduhubAlerts = {
    // Topic patterns to subscribe to (`*` stands for one dotted segment);
    // null: the client's default, every topic of one to three segments.
    topics: null,
    // Base of the Plone REST API; null: config.settings.apiPath.
    apiPath: null,
    ...(config.settings.eduhubAlerts || {}),
  };
  return config;
}
