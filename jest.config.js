const jestJupyterLab = require('@jupyterlab/testing/lib/jest-config');

const esModules = [
  '@codemirror',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@jupyter/ydoc',
  '@jupyterlab/',
  '@microsoft',
  'exenv-es6',
  'lib0',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  collectCoverageFrom: [
    'src/**/*.{ts,tsx}',
    '!src/**/*.d.ts',
    '!src/__tests__/**'
  ],
  coverageReporters: ['lcov', 'text'],
  reporters: ['default'],
  testRegex: 'src/.*/.*.spec.ts[x]?$',
  // The built labextension (and ui-tests) hold another package.json with the
  // same name: without this jest reports a "Haste module naming collision".
  modulePathIgnorePatterns: [
    '<rootDir>/jupyter_env_manager/',
    '<rootDir>/ui-tests/',
    '<rootDir>/lib/',
    '<rootDir>/.venv/'
  ],
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
