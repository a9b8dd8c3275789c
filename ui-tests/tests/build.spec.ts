import { expect, test } from '@jupyterlab/galata';

const PANEL = 'jupyter-env-manager-panel';

/**
 * A build journey. It needs a conda channel the server can reach: run with
 * ENVMGR_TEST_CHANNEL=file://DIR after
 * `python -m jupyter_env_manager.testing.channel DIR`.
 */
test.describe('Build journey', () => {
  test.skip(!process.env.ENVMGR_TEST_CHANNEL, 'ENVMGR_TEST_CHANNEL is not set');
  test.setTimeout(180_000);

  test.afterEach(async ({ request, baseURL }) => {
    // Leave the stores empty for the other tests (and their screenshots).
    const response = await request.delete(
      `${baseURL}/env-manager/environments/local/journey`
    );
    expect([204, 404]).toContain(response.status());
  });

  test('create and build, follow the log, get a kernel', async ({ page }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await panel.getByRole('button', { name: 'New environment' }).click();
    const dialog = page.locator('.jp-EnvManager-FormDialog');
    await dialog.locator('[name="name"]').fill('journey');
    await dialog.locator('[name="display_name"]').fill('Journey Env');
    await dialog.locator('[name="conda"]').fill('alpha');
    await dialog.getByRole('button', { name: 'Create and build' }).click();
    await expect(dialog).toHaveCount(0);

    // The notification offers the log; the log follows the build to its end.
    await page.getByRole('button', { name: 'Show log' }).first().click();
    const log = page.locator('.jp-EnvManager-Log');
    await expect(log.locator('.jp-EnvManager-LogText')).toContainText('== solve ==');
    await expect(log.locator('.jp-EnvManager-LogTitle')).toContainText('version 1');
    await expect(log.locator('.jp-EnvManager-LogText')).toContainText('build succeeded', {
      timeout: 120_000
    });
    await expect(log.locator('.jp-EnvManager-Phase.jp-mod-done')).toHaveCount(6);

    const row = panel.locator('li[data-name="journey"]');
    await expect(row.locator('.jp-EnvManager-Badge')).toHaveText('ready');
    await expect(row.locator('.jp-EnvManager-Kernel')).toHaveText('kernel on');

    // Kernelspecs were refreshed: the Launcher offers the kernel without a reload.
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('launcher:create');
    });
    await expect(
      page.locator('.jp-LauncherCard:visible', { hasText: 'Journey Env' }).first()
    ).toBeVisible();

    // A notebook on that kernel names its environment in the status bar.
    await page.evaluate(async () => {
      await (window as any).jupyterapp.commands.execute('notebook:create-new', {
        kernelName: 'envmgr-journey'
      });
    });
    const status = page.locator('.jp-EnvManager-StatusButton');
    await expect(status).toHaveText('journey (local) v1');
    await status.click();
    await expect(row).toHaveClass(/jp-mod-selected/);
  });
});
