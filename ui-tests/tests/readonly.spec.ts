import { expect, test } from '@jupyterlab/galata';
import type { Page } from '@playwright/test';
import { action, API, expand, PANEL, remove, row, sectionTitle } from './helpers';

/**
 * A shared store that is read-only (or unreadable) for this user: its root's
 * permissions say so, and tests/test_shared_store.py checks the server's side
 * with real users (its `shared_access` and the `actions` it allows). The test
 * server runs as root, for whom every store is writable, so the server's
 * answers are changed on their way to the page as the server answers such a
 * user: `shared_access` in `info`, and the changes of a shared environment
 * not allowed, with the server's reason. What is under test is the panel's
 * reading of them.
 */
const NAME = 'readonly-team';
// The server's sentence for such a user (Store.write_denial), as a 403 and as
// the reason of the actions it does not allow.
const READ_ONLY =
  `You (alice) may not change environment '${NAME}' in the shared store: ` +
  "/shared/.envmgr/envs/readonly-team is not writable for you (ask the store's owner: " +
  "its root's group needs write permission, e.g. chmod 2775)";

function readOnlyView(env: any): any {
  if (env.scope !== 'shared') {
    return env;
  }
  const actions = { ...env.actions };
  for (const action of ['build', 'edit', 'revert', 'delete', 'adopt']) {
    actions[action] = { allowed: false, reason: READ_ONLY };
  }
  return { ...env, actions };
}

async function serverSays(page: Page, sharedAccess: string): Promise<void> {
  await page.route(/\/env-manager\/info/, async route => {
    const response = await route.fetch();
    const info = await response.json();
    await route.fulfill({
      response,
      json: { ...info, shared_access: sharedAccess }
    });
  });
  await page.route(/\/env-manager\/environments(\/shared\/[^/?]+)?(\?.*)?$/, async route => {
    const response = await route.fetch();
    if (route.request().method() !== 'GET' || !response.ok()) {
      await route.fulfill({ response });
      return;
    }
    const body = await response.json();
    await route.fulfill({
      response,
      json: body.environments
        ? { ...body, environments: body.environments.map(readOnlyView) }
        : readOnlyView(body)
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
    await expect(sectionTitle(page, 'shared').locator('.jp-EnvManager-ReadOnly')).toHaveText(
      'read-only'
    );
    await expect(sectionTitle(page, 'shared').locator('.jp-EnvManager-ReadOnly')).toBeVisible();
    await expect(sectionTitle(page, 'local').locator('.jp-EnvManager-ReadOnly')).toHaveCount(0);

    const envRow = row(page, 'shared', NAME);
    await expand(envRow);
    for (const command of ['build', 'edit', 'delete']) {
      const button = action(envRow, command);
      await expect(button).toHaveAttribute('aria-disabled', 'true');
      await expect(button).toHaveAttribute('title', READ_ONLY);
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
