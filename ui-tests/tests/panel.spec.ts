import { expect, galata, test } from '@jupyterlab/galata';
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { version } = require(path.resolve(__dirname, '../../package.json'));

const PANEL = 'jupyter-env-manager-panel';

test.describe('Environments panel', () => {
  test('shows the server extension version', async ({ page }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await expect(panel).toBeVisible();
    const info = panel.locator('.jp-EnvManager-ServerInfo');
    await expect(info).toContainText(`Server extension ${version}`);
    await expect(info).toHaveAttribute('data-version', version);
    await expect(panel.locator('.jp-EnvManager-Section')).toHaveCount(2);
    await expect(panel.locator('.jp-EnvManager-Error')).toHaveCount(0);
    // toHaveScreenshot waits until two shots agree (fonts, icons, late rows).
    await expect(panel).toHaveScreenshot('env-panel.png');
  });

  test('says so when the server extension is missing', async ({ page }) => {
    await page.route(/\/env-manager\/info/, route =>
      route.fulfill({ status: 404, body: '<html>404: Not Found</html>' })
    );
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#jupyterlab-splash', { state: 'detached' });
    await page.sidebar.openTab(PANEL);
    const error = page.locator(`#${PANEL} .jp-EnvManager-Error`);
    await expect(error).toBeVisible();
    await expect(error).toHaveAttribute('data-reason', 'missing');
    await expect(error).toContainText('server extension is not available');
  });

  test('says so when the server extension version differs', async ({ page }) => {
    await page.route(/\/env-manager\/info/, async route => {
      const response = await route.fetch();
      const info = await response.json();
      await route.fulfill({ response, json: { ...info, version: '99.0.0' } });
    });
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#jupyterlab-splash', { state: 'detached' });
    await page.sidebar.openTab(PANEL);
    const error = page.locator(`#${PANEL} .jp-EnvManager-Error`);
    await expect(error).toHaveAttribute('data-reason', 'version-mismatch');
    await expect(error).toContainText('99.0.0');
    await expect(error).toContainText(version);
  });
});

// Keep `galata` referenced for helpers used by later journeys.
void galata;
