import { expect, test } from '@jupyterlab/galata';
import type { Page } from '@playwright/test';
import { action, API, expand, PANEL, remove, row } from './helpers';

/**
 * A shared store that is read-only (or unreadable) for this user: its root's
 * permissions say so, and tests/test_shared_store.py checks the server's side
 * with real users. The test server runs as root, for whom every store is
 * writable, so the server's `info` answer is changed to another
 * `shared_access` on its way to the page: what is under test is the panel's
 * reading of it.
 */
const NAME = 'readonly-team';

async function serverSays(page: Page, sharedAccess: string): Promise<void> {
  await page.route(/\/env-manager\/info/, async route => {
    const response = await route.fetch();
    const info = await response.json();
    await route.fulfill({
      response,
      json: { ...info, shared_access: sharedAccess }
    });
  });
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached' });
}

test.describe('A read-only shared store', () => {
  test.beforeEach(async ({ request, baseURL }) => {
    const created = await request.post(`${baseURL}/${API}`, {
      data: { scope: 'shared', name: NAME, conda: ['alpha'] }
    });
    expect(created.status()).toBe(201);
  });

  test.afterEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'shared', NAME);
  });

  test('is marked read-only and its changes are disabled, saying why', async ({
    page
  }) => {
    await serverSays(page, 'read');
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    const shared = panel.locator('.jp-EnvManager-Section[data-scope="shared"]');
    await expect(shared.locator('.jp-EnvManager-ReadOnly')).toHaveText(
      'read-only'
    );
    await expect(
      panel.locator(
        '.jp-EnvManager-Section[data-scope="local"] .jp-EnvManager-ReadOnly'
      )
    ).toHaveCount(0);

    const envRow = row(page, 'shared', NAME);
    await expand(envRow);
    const why =
      'The shared store is read-only for you: ask its owner for write access';
    for (const command of ['build', 'edit', 'delete']) {
      const button = action(envRow, command);
      await expect(button).toHaveAttribute('aria-disabled', 'true');
      await expect(button).toHaveAttribute('title', why);
    }
    // Using it stays possible: its log, its versions, a copy of one's own.
    await expect(action(envRow, 'versions')).toHaveAttribute(
      'aria-disabled',
      'false'
    );

    // The New environment dialog offers only the local store.
    await panel.getByRole('button', { name: 'New environment' }).click();
    const dialog = page.locator('.jp-Dialog');
    const sharedChoice = dialog.locator('input[name="scope"][value="shared"]');
    await expect(sharedChoice).toBeDisabled();
    await expect(dialog.locator('.jp-EnvManager-Scope')).toContainText(
      'The shared store is read-only for you'
    );
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  test('that the user may not read is explained, not listed', async ({
    page
  }) => {
    await serverSays(page, 'none');
    await page.sidebar.openTab(PANEL);
    const shared = page.locator(
      `#${PANEL} .jp-EnvManager-Section[data-scope="shared"]`
    );
    await expect(shared.locator('.jp-EnvManager-Empty')).toContainText(
      'You may not read the shared store'
    );
    await expect(shared.locator('.jp-EnvManager-Error')).toHaveCount(0);
    await expect(row(page, 'shared', NAME)).toHaveCount(0);
  });
});
