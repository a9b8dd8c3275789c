import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext, Page } from '@playwright/test';
import { action, API, expand, PANEL, remove, row, sectionTitle } from './helpers';

/**
 * Publishing with approval from the panel. The test server's user can write
 * the shared store and no `approvers` are configured, so it is an approver
 * (tests/test_publishing.py covers a requester, an approver and a teammate as
 * real Unix users): it submits its own draft, sees it pending, reviews the
 * request with its diff, approves it and sees it published; a second request
 * is rejected, and the draft shows the reason.
 */
const NAME = 'pubdemo';

async function built(request: APIRequestContext, baseURL: string, scope: string, name: string) {
  await expect
    .poll(
      async () => (await (await request.get(`${baseURL}/${API}/${scope}/${name}`)).json()).status,
      { message: `build of ${scope}/${name}`, timeout: 120_000 }
    )
    .toBe('ready');
}

/**
 * Open (or close) a section of the panel, whatever its state.
 */
async function section(page: Page, id: string, open: boolean): Promise<void> {
  const title = sectionTitle(page, id);
  if ((await title.getAttribute('aria-expanded')) !== String(open)) {
    await title.click();
  }
  await expect(title).toHaveAttribute('aria-expanded', String(open));
}

async function submit(page: Page, reason: string): Promise<void> {
  const envRow = row(page, 'local', NAME);
  await expand(envRow);
  const button = action(envRow, 'submit');
  await expect(button).toHaveAttribute('aria-disabled', 'false');
  // The row's toolbar may be below the section's fold: the button's own click.
  await button.dispatchEvent('click');
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('input').fill(reason);
  await dialog.getByRole('button', { name: 'Submit' }).click();
  await expect(envRow.locator('.jp-EnvManager-Lifecycle')).toHaveText('pending');
}

test.describe('Publishing with approval', () => {
  test.beforeEach(async ({ request, baseURL }) => {
    const created = await request.post(`${baseURL}/${API}`, {
      data: { scope: 'local', name: NAME, conda: ['alpha=1.0'], build: true }
    });
    expect(created.status()).toBe(201);
    await built(request, baseURL!, 'local', NAME);
  });

  test.afterEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'local', NAME);
    await remove(request, baseURL!, 'shared', NAME);
  });

  test('submit, review the diff, approve, see it published; a rejection shows its reason', async ({
    page,
    request,
    baseURL
  }) => {
    await page.sidebar.openTab(PANEL);
    // The local section gets the room (the shared one is opened again below).
    await section(page, 'shared', false);
    const envRow = row(page, 'local', NAME);
    await expect(envRow.locator('.jp-EnvManager-Lifecycle')).toHaveText('draft');

    await submit(page, 'the team needs alpha');
    const requests = sectionTitle(page, 'requests');
    await expect(requests).toContainText('Requests (1)');

    // The review: alpha added (nothing published yet), the checks, Approve.
    const item = page.locator(`#${PANEL} .jp-EnvManager-Request`).filter({ hasText: NAME });
    await expect(item).toContainText('the team needs alpha');
    await item.locator('.jp-EnvManager-RequestSummary').click();
    const review = page.locator('.jp-EnvManager-Review');
    await expect(review.locator('.jp-EnvManager-ReviewStatus')).toHaveText('pending');
    const alpha = review.locator('.jp-EnvManager-ReviewDiff tr[data-package="alpha"]').first();
    await expect(alpha).toContainText('added');
    await expect(alpha).toContainText('1.0');
    await expect(review.locator('[data-check="pip_direct"]')).toContainText(
      'No pip requirement is a direct URL or a local path'
    );
    await review.getByRole('button', { name: 'Approve' }).click();
    await expect(review.locator('.jp-EnvManager-ReviewStatus')).toHaveText(
      'published: published as v1',
      { timeout: 120_000 }
    );
    // The shared section stays closed: its row is there all the same.
    const shared = row(page, 'shared', NAME);
    await expect(shared.locator('.jp-EnvManager-Lifecycle')).toHaveText('published');
    await expect(requests).not.toContainText('Requests (1)');

    // An update, rejected: the draft shows why.
    const patched = await request.patch(`${baseURL}/${API}/local/${NAME}`, {
      data: { conda: ['alpha=2.0'] }
    });
    expect(patched.status()).toBe(200);
    await request.post(`${baseURL}/${API}/local/${NAME}/builds`);
    await expect
      .poll(
        async () =>
          (await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json()).version,
        { timeout: 120_000 }
      )
      .toBe(2);
    await submit(page, 'alpha 2 please');
    await expect(requests).toContainText('Requests (1)');
    // Its review, opened by the command the list's items run.
    const listed = await (await request.get(`${baseURL}/env-manager/requests`)).json();
    const pending = listed.requests.find((r: any) => r.status === 'pending');
    expect(pending.reason).toBe('alpha 2 please');
    await page.evaluate(
      id => (window as any).jupyterapp.commands.execute('env-manager:review', { id }),
      pending.id
    );
    const second = page.locator('.jp-EnvManager-Review').last();
    const upgraded = second.locator('tr[data-package="alpha"]').first();
    await expect(upgraded).toContainText('upgraded');
    await expect(upgraded).toContainText('1.0 → 2.0');
    await second.getByRole('button', { name: 'Reject' }).click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.locator('input').fill('alpha 2 is not vetted');
    await dialog.getByRole('button', { name: 'Reject' }).click();
    await expect(second.locator('.jp-EnvManager-ReviewStatus')).toHaveText(
      'rejected: alpha 2 is not vetted'
    );

    await page.sidebar.openTab(PANEL);
    await expect(envRow.locator('.jp-EnvManager-Lifecycle')).toHaveText('rejected');
    await expand(envRow);
    await expect(envRow.locator('.jp-EnvManager-LifecycleNote')).toHaveText(
      'alpha 2 is not vetted'
    );
    expect(await page.locator(`#${PANEL}`).screenshot()).toBeTruthy();
  });
});
