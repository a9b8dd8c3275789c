import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const PANEL = 'jupyter-env-manager-panel';

test('lists an unmanaged environment with Adopt and Make kernel', async ({ page }) => {
  // A conda prefix the environment manager did not create.
  const prefix = path.join(process.env.ENVMGR_UI_ROOT!, 'local', 'legacy');
  fs.mkdirSync(path.join(prefix, 'conda-meta'), { recursive: true });
  fs.writeFileSync(path.join(prefix, 'conda-meta', 'history'), '');

  await page.sidebar.openTab(PANEL);
  const panel = page.locator(`#${PANEL}`);
  await panel.getByRole('button', { name: 'Refresh' }).click();
  const row = panel.locator('.jp-EnvManager-EnvList.jp-mod-unmanaged li[data-name="legacy"]');
  await expect(row).toBeVisible();
  await expect(panel.getByRole('heading', { name: 'Not managed' })).toBeVisible();
  await expect(row.locator('.jp-EnvManager-Badge')).toHaveText('unmanaged');
  const actions = row.locator('.jp-EnvManager-EnvActions');
  await expect(actions.locator('[data-command="env-manager:adopt"]')).toHaveText('Adopt');
  await expect(actions.locator('[data-command="env-manager:toggle-kernel"]')).toHaveText(
    'Make kernel'
  );
  fs.rmSync(prefix, { recursive: true, force: true });
});
