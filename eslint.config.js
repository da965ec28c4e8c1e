import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.tap/', '.zone/', 'api/static/', 'vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The web console's browser modules (api/console/): the browser globals they use.
    files: ['api/console/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(['window', 'document', 'location', 'fetch', 'WebSocket', 'TextEncoder', 'TextDecoderStream', 'btoa', 'atob', 'crypto',
        'URL', 'Node', 'AbortController', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'].map((name) => [name, 'readonly'])),
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
