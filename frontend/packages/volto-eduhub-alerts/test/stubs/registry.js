// Stand-in for @plone/volto/registry: the settings the add-on reads.
const config = {
  settings: {
    apiPath: 'http://localhost:3000',
    publicURL: 'http://localhost:3000',
    appExtras: [],
  },
};

export default config;
