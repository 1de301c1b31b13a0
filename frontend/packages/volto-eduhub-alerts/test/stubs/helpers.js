// Stand-in for Volto's flattenToAppURL: strips the API path (and ++api++)
// from URLs that point at the site, as Volto's does with settings.apiPath.
import config from './registry.js';

export function flattenToAppURL(url) {
  const { apiPath, publicURL } = config.settings;
  return (
    url &&
    url
      .replace(apiPath, '')
      .replace(publicURL, '')
      .replace('/++api++', '')
  );
}
