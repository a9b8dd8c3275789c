import { expect, test } from '@jupyterlab/galata';
import type { Page } from '@playwright/test';
import { filterBox, formDialog } from './helpers';

const PANEL = 'jupyter-env-manager-panel';

async function openCreateDialog(page: Page) {
  await page.sidebar.openTab(PANEL);
  const panel = page.locator(`#${PANEL}`);
  await expect(panel.locator('.jp-EnvManager-ServerInfo')).toBeVisible();
  await panel.getByRole('button', { name: 'New environment' }).click();
  const dialog = await formDialog(page);
  await expect(dialog).toBeVisible();
  return dialog;
}

test.describe('New environment dialog', () => {
  test('opens with its fields and buttons', async ({ page }) => {
    const dialog = await openCreateDialog(page);
    await expect(dialog.locator('.jp-Dialog-header')).toHaveText('New environment');
    for (const field of ['name', 'display_name', 'base', 'python', 'conda', 'pip']) {
      await expect(dialog.locator(`[name="${field}"]`)).toBeVisible();
    }
    await expect(dialog.locator('[name="name"]')).toBeFocused();
    // (Before opening "Advanced": it shows the server's channels.)
    await expect(dialog.locator('.jp-Dialog-content')).toHaveScreenshot(
      'new-environment-dialog.png'
    );
    // Channels are advanced: hidden until the section is opened.
    await expect(dialog.locator('[name="channels"]')).toBeHidden();
    await dialog.getByText('Advanced').click();
    await expect(dialog.locator('[name="channels"]')).toBeVisible();
    await expect(dialog.getByRole('button', { name: 'Create', exact: true })).toBeVisible();
    await expect(dialog.getByRole('button', { name: 'Create and build' })).toBeVisible();
  });

  test('shows the name\'s error next to the name field', async ({ page }) => {
    const dialog = await openCreateDialog(page);
    const name = dialog.locator('[name="name"]');
    await name.fill('Bad Name!');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    const error = dialog.locator('.jp-EnvManager-FieldError[data-field="name"]');
    await expect(error).toBeVisible();
    await expect(error).toContainText('Invalid name "Bad Name!"');
    await expect(name).toHaveAttribute('aria-invalid', 'true');
    // Focus moves to the field in error.
    await expect(name).toBeFocused();
    // The dialog stays open so that the name can be fixed.
    await expect(dialog).toBeVisible();
    await expect(dialog.locator('.jp-Dialog-content')).toHaveScreenshot(
      'new-environment-name-error.png'
    );
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
  });

  test('creates a saved environment, explains disabled actions, deletes it', async ({
    page
  }) => {
    const dialog = await openCreateDialog(page);
    await dialog.locator('[name="name"]').fill('ui-saved');
    await dialog.locator('[name="display_name"]').fill('UI saved');
    await dialog.locator('[name="conda"]').fill('numpy\npandas');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await expect(dialog).toHaveCount(0);

    const row = page.locator(`#${PANEL} li.jp-EnvManager-Env[data-name="ui-saved"]`);
    await expect(row).toBeVisible();
    await expect(row.locator('.jp-EnvManager-Badge')).toHaveText('saved');
    await expect(row.locator('.jp-EnvManager-EnvDisplayName')).toHaveText('UI saved');

    // Created rows are selected and expanded, actions visible.
    const actions = row.locator('.jp-EnvManager-EnvActions');
    await expect(actions).toBeVisible();
    const logs = actions.locator('[data-command="env-manager:show-log"]');
    await expect(logs).toHaveAttribute('aria-disabled', 'true');
    await expect(logs).toHaveAttribute('title', /Never built/);
    const kernel = actions.locator('[data-command="env-manager:toggle-kernel"]');
    await expect(kernel).toHaveAttribute('aria-disabled', 'true');
    await expect(kernel).toHaveAttribute('title', /Build it first/);
    await expect(actions.locator('[data-command="env-manager:build"]')).toHaveAttribute(
      'aria-disabled',
      'false'
    );

    // The filter box narrows the list.
    const filter = filterBox(page);
    await filter.fill('no-such-env');
    await expect(row).toHaveCount(0);
    await filter.fill('ui-sav');
    await expect(row).toBeVisible();
    await filter.fill('');

    await actions.locator('[data-command="env-manager:delete"]').click();
    const confirm = page.locator('.jp-Dialog');
    await expect(confirm).toContainText('Delete ui-saved?');
    await confirm.getByRole('button', { name: 'Delete' }).click();
    await expect(row).toHaveCount(0);
  });

  test('is in the command palette', async ({ page }) => {
    await page.keyboard.press('Control+Shift+c');
    await page.locator('.lm-CommandPalette-input').fill('New Environment');
    await expect(
      page.locator('.lm-CommandPalette-item', { hasText: 'New Environment…' })
    ).toBeVisible();
  });
});
