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
  // The server's user is an approver under the "direct" policy: its rows
  // offer Copy to shared, not Submit; the command submits all the same.
  await page.evaluate(name => {
    // Not awaited: the command waits for the dialog the test fills in.
    void (window as any).jupyterapp.commands.execute('env-manager:submit', {
      scope: 'local',
      name
    });
  }, NAME);
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('input').fill(reason);
  await dialog.getByRole('button', { name: 'Submit' }).click();
  const envRow = row(page, 'local', NAME);
  await expect(envRow.locator('.jp-EnvManager-Lifecycle')).toHaveText('pending');
  // A pending request can be withdrawn from its row.
  await expand(envRow);
  await expect(action(envRow, 'withdraw')).toHaveAttribute('aria-disabled', 'false');
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
    const envRow = row(page, 'local', NAME);
    await expect(envRow.locator('.jp-EnvManager-Lifecycle')).toHaveCount(0); // a draft
    await expect(sectionTitle(page, 'requests')).toHaveCount(0); // nothing to review yet

    await submit(page, 'the team needs alpha');
    const requests = sectionTitle(page, 'requests');
    await expect(requests).toContainText('Requests (1)');
    await section(page, 'requests', true); // it starts collapsed: its title has the count

    // The review: alpha added (nothing published yet), the checks, Approve.
    const item = page.locator(`#${PANEL} .jp-EnvManager-Request`).filter({ hasText: NAME });
    await expect(item).toContainText('the team needs alpha');
    // The section may be short (the rows above are expanded): the item's own click.
    await item.locator('.jp-EnvManager-RequestSummary').dispatchEvent('click');
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
    await expect(row(page, 'shared', NAME)).toHaveCount(1);
    const published = await (await request.get(`${baseURL}/${API}/shared/${NAME}`)).json();
    expect(published.lifecycle.status).toBe('published');
    await expect(requests).toHaveCount(0); // nothing waits for review

    // An update, rejected: the draft shows why.
    const patched = await request.patch(`${baseURL}/${API}/local/${NAME}`, {
      data: { conda: ['alpha=2.0'] }
    });
    expect(patched.status()).toBe(200);
    await request.post(`${baseURL}/${API}/local/${NAME}/builds`);
    await expect
      .poll(
        async () => {
          const env = await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json();
          return `${env.status} v${env.version}`;
        },
        { timeout: 120_000 }
      )
      .toBe('ready v2');
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
