// Lint: typescript-eslint with type information; floating promises are errors.
import tseslint from 'typescript-eslint';
import lars from './scripts/lint-layers.mjs';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.lars/', 'bin/', 'scripts/', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
    },
  },
  {
    // The one-way layout: which folder may import which (scripts/lint-layers.mjs), and no import cycles.
    files: ['src/**/*.ts', 'actors/**/*.ts', 'schemas/**/*.ts'],
    plugins: { lars },
    rules: { 'lars/layers': 'error', 'lars/no-cycle': 'error' },
  },
  {
    // The console page: plain browser JavaScript served as is (no type information, browser globals).
    files: ['src/console/assets/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      sourceType: 'script',
      parserOptions: { projectService: false },
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'history', 'localStorage', 'fetch', 'EventSource', 'URLSearchParams', 'CSS', 'performance', 'devicePixelRatio', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'console', 'uPlot'].map((g) => [g, 'readonly']),
      ),
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-misused-promises': 'off', 'no-undef': 'error' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
