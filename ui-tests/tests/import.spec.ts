import { expect, test } from '@jupyterlab/galata';
import { formDialog, remove } from './helpers';

/**
 * Import an environment.yml from the panel: a bad conda spec in the file is
 * reported next to the YAML, then a good file is imported and built to ready
 * from the local test channel and wheelhouse.
 */

const PANEL = 'jupyter-env-manager-panel';
const NAME = 'imported';
const BAD_YML = 'name: import-bad\ndependencies: ["alpha >=>1"]\n';
const GOOD_YML = `name: ${NAME}\ndependencies:\n  - alpha\n  - pip:\n    - envmgr-hello==1.0\n`;

test.describe('Import environment.yml', () => {
  test.setTimeout(120_000);

  test.afterEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'local', NAME);
    await remove(request, baseURL!, 'local', 'import-bad');
  });

  test('is in the command palette', async ({ page }) => {
    await page.keyboard.press('Control+Shift+c');
    await page.locator('.lm-CommandPalette-input').fill('Import environment');
    await expect(
      page.locator('.lm-CommandPalette-item', { hasText: 'Import environment.yml…' })
    ).toBeVisible();
  });

  test('reports a bad spec next to the YAML, then imports and builds', async ({ page }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await expect(panel.locator('.jp-EnvManager-ServerInfo')).toBeVisible();
    await panel.getByRole('button', { name: 'Import environment.yml' }).click();
    const dialog = await formDialog(page);
    await expect(dialog.locator('.jp-Dialog-header')).toHaveText('Import environment.yml');
    const yml = dialog.locator('textarea[name="environment_yml"]');
    const name = dialog.locator('input[name="name"]');

    await test.step('the file picker fills the text area', async () => {
      await dialog.locator('input[type="file"]').setInputFiles({
        name: 'environment.yml',
        mimeType: 'text/yaml',
        buffer: Buffer.from(BAD_YML)
      });
      await expect(yml).toHaveValue(BAD_YML);
      await expect(name).toHaveAttribute('placeholder', 'import-bad');
    });

    await test.step('a bad conda spec is shown next to the YAML', async () => {
      await yml.fill(BAD_YML);
      await dialog.getByRole('button', { name: 'Import', exact: true }).click();
      const error = dialog.locator('.jp-EnvManager-FieldError[data-field="environment_yml"]');
      await expect(error).toContainText('alpha >=>1');
      await expect(yml).toHaveAttribute('aria-invalid', 'true');
      await expect(yml).toBeFocused();
      await expect(dialog).toBeVisible();
    });

    await test.step('a good file is imported and built to ready', async () => {
      await yml.fill(GOOD_YML);
      await expect(name).toHaveAttribute('placeholder', NAME);
      await dialog.getByRole('button', { name: 'Import and build' }).click();
      await expect(dialog).toHaveCount(0);
      await expect(page.getByRole('button', { name: 'Show log' }).first()).toBeVisible();
      const row = panel.locator(
        `.jp-EnvManager-Section[data-scope="local"] li.jp-EnvManager-Env[data-name="${NAME}"]`
      );
      await expect(row).toBeVisible();
      await expect(row.locator('.jp-EnvManager-Badge')).toHaveText('ready', {
        timeout: 90_000
      });
    });
  });
});
