// Tests run without @plone/volto installed (it is hundreds of MB): the three
// Volto modules the add-on imports resolve to tiny stand-ins under
// test/stubs/. Everything else is real: React, react-redux with a redux
// store, react-toastify, the @eduhub/alerts-client module, jsdom's
// WebSocket and a WebSocket/HTTP server in the test.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const stub = (name) => fileURLToPath(new URL(`./test/stubs/${name}`, import.meta.url));

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  resolve: {
    alias: [
      { find: /^@plone\/volto\/components$/, replacement: stub('components.jsx') },
      { find: /^@plone\/volto\/helpers$/, replacement: stub('helpers.js') },
      { find: /^@plone\/volto\/registry$/, replacement: stub('registry.js') },
    ],
  },
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.{js,jsx}'],
    // The document's origin, sent by jsdom's WebSocket as `Origin`.
    environmentOptions: { jsdom: { url: 'http://localhost:3000/' } },
    testTimeout: 15000,
    restoreMocks: true,
  },
});
