/**
 * Configuration for Playwright using default from @jupyterlab/galata.
 *
 * The browser is Debian's chromium (`apt-get install -y chromium`): browser
 * downloads are not possible here, so `playwright install` is never used.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

// One throw-away root for the server's stores, shared with the tests (workers
// inherit it), so that tests can lay out environments on disk.
// Removed at exit when made here (the test channel and builds take ~100 MB).
if (!process.env.ENVMGR_UI_ROOT) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'envmgr-ui-'));
  process.env.ENVMGR_UI_ROOT = root;
  process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
}

// The server's port: 8888 unless ENVMGR_UI_PORT says otherwise (so that a run can
// live beside another Jupyter server). Galata's fixtures read TARGET_URL.
const port = process.env.ENVMGR_UI_PORT || '8888';
process.env.TARGET_URL = `http://localhost:${port}`;

module.exports = {
  ...baseConfig,
  // One server and one set of stores for all tests: run them one at a time.
  workers: 1,
  reporter: [[process.env.CI ? 'github' : 'list'], ['html', { open: 'never' }]],
  // Screenshots leave out what each chromium release draws its own way (screenshot.css).
  expect: {
    toHaveScreenshot: { stylePath: path.join(__dirname, 'screenshot.css') }
  },
  use: {
    ...baseConfig.use,
    baseURL: `http://localhost:${port}`,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    },
    video: 'off',
    trace: 'retain-on-failure'
  },
  webServer: {
    command: `jlpm start --ServerApp.port=${port} --ServerApp.port_retries=0`,
    url: `http://localhost:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
