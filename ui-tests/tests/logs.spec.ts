import { expect, test } from '@jupyterlab/galata';
import { API, remove } from './helpers';

/**
 * Log tabs are tracked (WidgetTracker) and restored by the layout restorer.
 */
const NAME = 'restored-log';

test.describe('Log tabs', () => {
  test.beforeEach(async ({ request, baseURL }) => {
    const created = await request.post(`${baseURL}/${API}`, {
      data: { scope: 'local', name: NAME, conda: ['alpha'] }
    });
    expect(created.status()).toBe(201);
  });

  test.afterEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'local', NAME);
  });

  test('come back after a reload', async ({ page }) => {
    // The workspace is saved a little after the layout changes: reload once
    // it holds the log tab.
    const saved = page.waitForRequest(
      request =>
        request.method() === 'PUT' &&
        request.url().includes('/api/workspaces') &&
        (request.postData() ?? '').includes(`env-manager-log:local/${NAME}/latest`)
    );
    await page.evaluate(async name => {
      await (window as any).jupyterapp.commands.execute('env-manager:show-log', {
        scope: 'local',
        name
      });
    }, NAME);
    const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', {
      hasText: `Log: ${NAME}`
    });
    await expect(tab).toHaveCount(1);
    const log = page.locator('.jp-EnvManager-Log:visible');
    await expect(log.locator('.jp-EnvManager-LogMessage')).toHaveText(
      'This environment has never been built.'
    );

    await saved;
    // (Galata's reload would wait for a Launcher: the restored log is shown.)
    await page.reload({ waitForIsReady: false } as any);
    await page.waitForSelector('#jupyterlab-splash', { state: 'detached' });
    await expect(tab).toHaveCount(1);
    await expect(log.locator('.jp-EnvManager-LogTitle')).toContainText(NAME);
  });
});
