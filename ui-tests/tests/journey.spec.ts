import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';
import { action, API, expand, formDialog, PANEL, remove, row, sectionTitle } from './helpers';

/**
 * The user journey of the issue, against the local test channel and wheelhouse
 * that jupyter_server_test_config.py writes (or ENVMGR_TEST_CHANNEL): create
 * through the dialog (after a validation error), build to ready in the panel
 * and the log viewer, the kernel in the Launcher and in a notebook, copy to
 * shared, edit and rebuild, revert, export; and the panel's screenshots in the
 * light and dark themes.
 */

const NAME = 'journey';
const SHARED_NAME = 'journey-team';
const PY_XY = /Python (\d+\.\d+)/;

/**
 * The installed version of the envmgr-hello wheel in an environment, read on disk.
 */
function helloVersion(prefix: string): string | undefined {
  const lib = path.join(prefix, 'lib');
  for (const python of fs.readdirSync(lib)) {
    const init = path.join(lib, python, 'site-packages', 'envmgr_hello', '__init__.py');
    if (fs.existsSync(init)) {
      return /__version__ = "([^"]+)"/.exec(fs.readFileSync(init, 'utf-8'))?.[1];
    }
  }
  return undefined;
}

test.describe('Journey', () => {
  // Four builds (create, copy, rebuild, revert) of a few packages each.
  test.setTimeout(150_000);

  test.afterEach(async ({ request, baseURL }) => {
    // Stop the kernels started on the environments, then delete them.
    const kernels = await (await request.get(`${baseURL}/api/kernels`)).json();
    for (const kernel of kernels) {
      if (kernel.name.startsWith('envmgr-')) {
        await request.delete(`${baseURL}/api/kernels/${kernel.id}`);
      }
    }
    await remove(request, baseURL!, 'shared', SHARED_NAME);
    await remove(request, baseURL!, 'local', NAME);
  });

  test('create, build, use, share, version, export; panel screenshots', async ({
    page,
    request,
    baseURL
  }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await expect(panel.locator('.jp-EnvManager-ServerInfo')).toBeVisible();
    const local = row(page, 'local', NAME);
    const shared = row(page, 'shared', SHARED_NAME);

    await test.step('a validation error in the dialog, then create and build', async () => {
      await panel.getByRole('button', { name: 'New environment' }).click();
      const dialog = await formDialog(page);
      await dialog.locator('[name="name"]').fill(NAME);
      await dialog.locator('[name="display_name"]').fill('Journey Env');
      await dialog.locator('[name="conda"]').fill('alpha');
      await dialog.locator('[name="pip"]').fill('envmgr-hello ==');
      await dialog.getByRole('button', { name: 'Create and build' }).click();
      const error = dialog.locator('.jp-EnvManager-FieldError[data-field="pip"]');
      await expect(error).toContainText("Invalid pip requirement 'envmgr-hello =='");
      await expect(dialog.locator('[name="pip"]')).toHaveAttribute('aria-invalid', 'true');
      await expect(dialog.locator('[name="pip"]')).toBeFocused();

      await dialog.locator('[name="pip"]').fill('envmgr-hello==1.0');
      await dialog.getByRole('button', { name: 'Create and build' }).click();
      await expect(dialog).toHaveCount(0);
    });

    await test.step('the log viewer follows the build to its end', async () => {
      // The notification offers the log.
      await page.getByRole('button', { name: 'Show log' }).first().click();
      const log = page.locator('.jp-EnvManager-Log:visible');
      await expect(log.locator('.jp-EnvManager-LogTitle')).toContainText('version 1');
      await expect(log.locator('.jp-EnvManager-LogText')).toContainText('== solve ==');
      await expect(log.locator('.jp-EnvManager-LogText')).toContainText('build succeeded', {
        timeout: 90_000
      });
      await expect(log.locator('.jp-EnvManager-Phase')).toHaveCount(6);
      await expect(log.locator('.jp-EnvManager-Phase.jp-mod-done')).toHaveCount(6);
    });

    const env = await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json();
    await test.step('ready in the panel, with its kernel on', async () => {
      await expect(local.locator('.jp-EnvManager-Badge')).toHaveText('ready');
      await expect(local.locator('.jp-EnvManager-Kernel')).toHaveText('kernel on');
      await expect(local.locator('.jp-EnvManager-EnvMeta')).toContainText('v1');
      expect(env.status).toBe('ready');
      expect(helloVersion(env.prefix)).toBe('1.0');
    });

    await test.step('the Launcher offers its kernel without a reload', async () => {
      await page.evaluate(async () => {
        await (window as any).jupyterapp.commands.execute('launcher:create');
      });
      await expect(
        page.locator('.jp-LauncherCard:visible', { hasText: 'Journey Env' }).first()
      ).toBeVisible();
    });

    await test.step('a notebook on its kernel runs in the environment', async () => {
      await page.evaluate(async name => {
        await (window as any).jupyterapp.commands.execute('notebook:create-new', {
          kernelName: `envmgr-${name}`
        });
      }, NAME);
      await page.waitForSelector('.jp-NotebookPanel:visible');
      await page.notebook.setCell(0, 'code', 'import sys, envmgr_hello; print(sys.prefix)');
      expect(await page.notebook.runCell(0)).toBe(true);
      // The kernel runs in the directory of the version in use (env.prefix links to it).
      expect((await page.notebook.getCellTextOutput(0))?.[0]?.trim()).toBe(
        fs.realpathSync(env.prefix)
      );

      // The status bar names the environment; its menu shows it in the panel.
      const status = page.locator('.jp-EnvManager-StatusButton');
      await expect(status).toHaveText(`${NAME} v1`);
      await status.click();
      await page
        .locator('.jp-EnvManager-PinMenu .lm-Menu-item', { hasText: 'Show Environments' })
        .click();
      await expect(local).toHaveClass(/jp-mod-selected/);
      await page.notebook.close(false);
    });

    await test.step('copy to shared under a new name', async () => {
      await expand(local);
      await action(local, 'copy').click();
      const dialog = page.locator('.jp-Dialog');
      await expect(dialog.locator('.jp-Dialog-header')).toHaveText(`Copy ${NAME} to shared`);
      await dialog.locator('input').fill(SHARED_NAME);
      await dialog.getByRole('button', { name: 'Copy' }).click();
      await expect(shared.locator('.jp-EnvManager-Badge')).toHaveText('ready', {
        timeout: 60_000
      });
      await expect(sectionTitle(page, 'shared')).toContainText('Shared (1)');
      const copy = await (await request.get(`${baseURL}/${API}/shared/${SHARED_NAME}`)).json();
      expect(copy.prefix).not.toBe(env.prefix);
      expect(helloVersion(copy.prefix)).toBe('1.0');
    });

    await test.step('screenshots of the panel in the light and dark themes', async () => {
      // Collapsed rows: the expanded ones show paths and dates, which vary.
      for (const envRow of [local, shared]) {
        const summary = envRow.locator('.jp-EnvManager-EnvSummary');
        if ((await summary.getAttribute('aria-expanded')) === 'true') {
          await summary.click();
        }
        await expect(summary).toHaveAttribute('aria-expanded', 'false');
      }
      // No focus ring in the shots: the last dialog gave focus back to its button.
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await expect(panel.locator(':focus')).toHaveCount(0);
      await page.mouse.move(900, 400);
      // Mask what depends on the host (the test channel's python and ipykernel
      // come from it) and on the py-rattler release, with a neutral colour.
      const mask = [
        panel.locator('.jp-EnvManager-EnvMeta span', { hasText: PY_XY }),
        panel.locator('.jp-EnvManager-EnvMeta span', { hasText: /packages?$/ }),
        panel.locator('.jp-EnvManager-ServerEngine')
      ];
      const maskColor = () =>
        page.evaluate(() =>
          getComputedStyle(document.body).getPropertyValue('--jp-layout-color3').trim()
        );
      await expect(panel).toHaveScreenshot('panel-light.png', {
        mask,
        maskColor: await maskColor()
      });
      await page.theme.setDarkTheme();
      try {
        await page.mouse.move(900, 400);
        await expect(panel).toHaveScreenshot('panel-dark.png', {
          mask,
          maskColor: await maskColor()
        });
      } finally {
        await page.theme.setLightTheme();
      }
    });

    await test.step('edit the spec and rebuild as version 2', async () => {
      await expand(local);
      await action(local, 'edit').click();
      const dialog = await formDialog(page);
      await expect(dialog.locator('.jp-Dialog-header')).toHaveText(`Edit ${NAME}`);
      await expect(dialog.locator('[name="conda"]')).toHaveValue('alpha');
      await dialog.locator('[name="pip"]').fill('envmgr-hello==2.0');
      await dialog.getByRole('button', { name: 'Save and build' }).click();
      await expect(dialog).toHaveCount(0);
      await expect(local.locator('.jp-EnvManager-EnvMeta')).toContainText('v2', {
        timeout: 60_000
      });
      await expect(local.locator('.jp-EnvManager-Badge')).toHaveText('ready');
      const current = await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json();
      expect(current.spec.pip).toEqual(['envmgr-hello==2.0']);
      expect(helloVersion(current.prefix)).toBe('2.0');
    });

    await test.step('revert to version 1 from the versions list', async () => {
      await action(local, 'versions').click();
      const dialog = page.locator('.jp-EnvManager-VersionsDialog');
      const versions = dialog.locator('tbody tr');
      await expect(versions).toHaveCount(2);
      await expect(dialog.locator('tr[data-version="2"]')).toHaveClass(/jp-mod-active/);
      await dialog.getByRole('button', { name: 'Revert to version 1' }).click();
      await expect(dialog).toHaveCount(0);
      await expect(local.locator('.jp-EnvManager-EnvMeta')).toContainText('v3', {
        timeout: 60_000
      });
      await expect(local.locator('.jp-EnvManager-Badge')).toHaveText('ready');
      const current = await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json();
      expect(helloVersion(current.prefix)).toBe('1.0');

      await action(local, 'versions').click();
      const v3 = dialog.locator('tr[data-version="3"]');
      await expect(v3).toHaveClass(/jp-mod-active/);
      await expect(v3).toContainText('revert');
      await dialog.getByRole('button', { name: 'Close' }).click();
      await expect(dialog).toHaveCount(0);
    });

    await test.step('export environment.yml as a download', async () => {
      await action(local, 'export').click();
      const dialog = page.locator('.jp-Dialog');
      await expect(dialog.locator('.jp-Dialog-header')).toHaveText(`Export ${NAME}`);
      await dialog.locator('select').selectOption({ label: 'environment.yml (the spec)' });
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        dialog.getByRole('button', { name: 'Download' }).click()
      ]);
      expect(download.suggestedFilename()).toMatch(/\.ya?ml$/);
      const text = fs.readFileSync((await download.path())!, 'utf-8');
      expect(text).toContain(`name: ${NAME}`);
      expect(text).toMatch(/- alpha/);
      // A revert restores a version's packages (its lock) and the spec they were built from.
      expect(text).toContain('envmgr-hello==1.0');
      expect(text).not.toContain('envmgr-hello==2.0');
    });
  });
});
