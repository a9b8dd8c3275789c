import { expect, test } from '@jupyterlab/galata';
import { API, formDialog, PANEL, remove, row } from './helpers';

/**
 * The workflows over many environments from the panel: add a package to
 * selected environments (one build each, a results table), find the
 * environments holding a package (the list keeps only those), and import a
 * requirements.txt.
 */

const ENVS = ['flow-a', 'flow-b'];

test.describe('Workflows over many environments', () => {
  test.setTimeout(240_000);

  test.beforeEach(async ({ request, baseURL }) => {
    for (const name of ENVS) {
      await remove(request, baseURL!, 'local', name);
      const created = await request.post(`${baseURL}/${API}`, {
        data: { name, conda: ['alpha=1.0'], build: true }
      });
      expect(created.status()).toBe(201);
    }
    for (const name of ENVS) {
      await expect
        .poll(
          async () =>
            (await (await request.get(`${baseURL}/${API}/local/${name}`)).json()).status,
          { timeout: 120_000 }
        )
        .toBe('ready');
    }
  });

  test.afterEach(async ({ request, baseURL }) => {
    for (const name of [...ENVS, 'fromreq']) {
      await remove(request, baseURL!, 'local', name);
    }
  });

  test('adds a package to the selected environments, then finds them', async ({ page }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await expect(row(page, 'local', 'flow-b')).toBeVisible();

    await test.step('the multi-selection dialog starts one build each', async () => {
      await panel.getByRole('button', { name: 'Add package to selected environments' }).click();
      const dialog = page.locator('.jp-Dialog-content');
      for (const name of ENVS) {
        await dialog.locator(`input[type="checkbox"][value="local/${name}"]`).check();
      }
      await dialog.locator('input[name="conda"]').fill('beta');
      await dialog.getByRole('button', { name: 'Install' }).click();
      const results = page.locator('.jp-EnvManager-FleetResults');
      await expect(results.locator('tbody tr')).toHaveCount(2);
      await expect(results).toContainText('local/flow-a');
      await expect(results).toContainText('beta - → …');
      await page.locator('.jp-Dialog').getByRole('button', { name: 'Close' }).click();
      for (const name of ENVS) {
        await expect(row(page, 'local', name).locator('.jp-EnvManager-EnvMeta')).toContainText(
          'v2',
          { timeout: 120_000 }
        );
      }
    });

    await test.step('which keeps only the environments holding the package', async () => {
      await panel.getByRole('button', { name: 'Find environments with a package' }).click();
      await page.locator('.jp-Dialog input').fill('beta>=1');
      await page.locator('.jp-Dialog').getByRole('button', { name: 'Ok' }).click();
      const banner = panel.locator('.jp-EnvManager-WhichBanner');
      await expect(banner).toContainText('2 environments hold beta>=1');
      await expect(row(page, 'local', 'flow-a')).toBeVisible();
      await panel.getByRole('button', { name: 'Find environments with a package' }).click();
      await page.locator('.jp-Dialog input').fill('beta>=9');
      await page.locator('.jp-Dialog').getByRole('button', { name: 'Ok' }).click();
      await expect(banner).toContainText('0 environments hold beta>=9');
      await expect(row(page, 'local', 'flow-a')).toHaveCount(0);
      await banner.getByRole('button', { name: 'Show all' }).click();
      await expect(banner).toHaveCount(0);
      await expect(row(page, 'local', 'flow-a')).toBeVisible();
    });
  });

  test('imports a requirements.txt', async ({ page, request, baseURL }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    // Connected: its commands are enabled (a click before may be lost).
    await expect(panel.getByRole('region', { name: 'Stores' })).toBeVisible();
    await panel.getByRole('button', { name: 'Import environment.yml' }).click();
    const dialog = await formDialog(page);
    await dialog.locator('input[type="file"]').setInputFiles({
      name: 'requirements.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('# the service\nenvmgr-hello==1.0\n')
    });
    await dialog.locator('input[name="name"]').fill('fromreq');
    await dialog.getByRole('button', { name: 'Import', exact: true }).click();
    await expect(dialog).toHaveCount(0);
    await expect(row(page, 'local', 'fromreq')).toBeVisible();
    const env = await (await request.get(`${baseURL}/${API}/local/fromreq`)).json();
    expect(env.spec.pip).toEqual(['envmgr-hello==1.0']);
  });
});
