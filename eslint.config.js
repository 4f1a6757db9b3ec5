// ESLint for the web SDK and its tests; `make lint-js` (and so `make test`) runs it.
// Each group of files gets the language level it runs under: the snippet is pasted into customer
// pages as is, so it stays ES5; the SDK promises "any browser from 2020 on" (docs/sdk.md).
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['.venv/', 'node_modules/', 'build/', 'dist/', 'test-artifacts/', '.mailslot/', 'bench/results/'] },
  js.configs.recommended,
  {
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-unused-vars': ['error', { caughtErrors: 'none' }],
      'prefer-const': 'error',
      'no-var': 'error',
    },
  },
  {
    files: ['gateway/static/sdk/**/*.js'],
    languageOptions: { ecmaVersion: 2020, sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    files: ['gateway/static/console/**/*.js'],
    languageOptions: { ecmaVersion: 2020, sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    files: ['gateway/static/sdk/**/snippet.js'],
    languageOptions: { ecmaVersion: 5 },
    rules: { 'no-var': 'off', 'prefer-const': 'off' },
  },
  {
    files: ['tests/js/**/*.mjs', 'eslint.config.js'],
    languageOptions: { ecmaVersion: 'latest', sourceType: 'module', globals: { ...globals.node } },
  },
];
