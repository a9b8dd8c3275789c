import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext } from '@playwright/test';
import * as path from 'path';
import { action, API, expand, PANEL, remove, row } from './helpers';

/**
 * The Packages view against the local test channel: an environment built
 * twice through REST (alpha 1.0, then alpha 2.0 which pulls in beta), then,
 * in the browser: open its packages from the panel, filter, compare v1 with
 * v2 from the versions table, search a prefix and add gamma to the spec,
 * build, and see the new version's packages contain it.
 */
const NAME = 'pkgview';
const SCREENSHOT = path.resolve(
  __dirname,
  '..',
  '..',
  'docs',
  'images',
  'packages.png'
);

async function waitReady(
  request: APIRequestContext,
  baseURL: string,
  version: number
): Promise<void> {
  await expect
    .poll(
      async () => {
        const env = await (
          await request.get(`${baseURL}/${API}/local/${NAME}`)
        ).json();
        return `${env.status} v${env.version}`;
      },
      { message: `local/${NAME} ready at v${version}`, timeout: 90_000 }
    )
    .toBe(`ready v${version}`);
}

test.describe('Packages view', () => {
  // Three builds of a few packages each.
  test.setTimeout(180_000);

  test.beforeEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'local', NAME);
    const created = await request.post(`${baseURL}/${API}`, {
      data: { scope: 'local', name: NAME, conda: ['alpha=1.0'], build: true }
    });
    expect(created.status()).toBe(201);
    await waitReady(request, baseURL!, 1);
    const upgraded = await request.post(
      `${baseURL}/${API}/local/${NAME}/install`,
      {
        data: { packages: ['alpha=2.0'] }
      }
    );
    expect(upgraded.status()).toBe(202);
    await waitReady(request, baseURL!, 2);
  });

  test.afterEach(async ({ request, baseURL }) => {
    await remove(request, baseURL!, 'local', NAME);
  });

  test('lists, filters, compares, searches, adds and builds', async ({
    page,
    request,
    baseURL
  }, testInfo) => {
    // The workspace is saved a little after the layout changes: the restore
    // step at the end reloads once it holds the Packages tab.
    const saved = page.waitForRequest(
      request =>
        request.method() === 'PUT' &&
        request.url().includes('/api/workspaces') &&
        (request.postData() ?? '').includes(
          `env-manager-packages:local/${NAME}`
        )
    );
    await page.sidebar.openTab(PANEL);
    const envRow = row(page, 'local', NAME);
    await expect(envRow).toBeVisible();
    await expand(envRow);

    const view = page.locator('.jp-EnvManager-Packages:visible');
    const table = view.locator('.jp-EnvManager-PackagesTable');
    const tableRow = (name: string) =>
      table.locator(`tbody tr[data-name="${name}"]`);

    await test.step('open the packages of the version in use from the panel', async () => {
      await action(envRow, 'open-packages').click();
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v2)'
      );
      await expect(tableRow('alpha')).toContainText('2.0');
      await expect(tableRow('alpha').locator('.jp-mod-requested')).toHaveText(
        'requested'
      );
      await expect(tableRow('beta')).toBeVisible();
      await expect(tableRow('beta').locator('.jp-mod-requested')).toHaveCount(
        0
      );
      // beta is a dependency: Remove says why not (a reason, not a hidden button).
      const removeBeta = tableRow('beta').getByRole('button', {
        name: 'Remove beta'
      });
      await expect(removeBeta).toHaveAttribute('aria-disabled', 'true');
      await expect(removeBeta).toHaveAttribute('title', /dependency/);
    });

    await test.step('filter as you type, and requested only', async () => {
      const filter = view.locator('.jp-EnvManager-PackagesFilter input');
      await filter.fill('bet');
      await expect(table.locator('tbody tr')).toHaveCount(1);
      await expect(tableRow('beta')).toBeVisible();
      await filter.fill('');
      await view.getByLabel('Requested only').check();
      await expect(tableRow('beta')).toHaveCount(0);
      await expect(tableRow('alpha')).toBeVisible();
      await view.getByLabel('Requested only').uncheck();
    });

    await test.step('an older version, from the version selector', async () => {
      await view
        .locator('.jp-EnvManager-VersionSelect select')
        .selectOption('1');
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v1)'
      );
      await expect(tableRow('alpha')).toContainText('1.0');
      await expect(tableRow('beta')).toHaveCount(0);
      await view
        .locator('.jp-EnvManager-VersionSelect select')
        .selectOption('');
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v2)'
      );
    });

    await test.step('"Compare with…" from the versions table', async () => {
      await action(envRow, 'versions').click();
      const dialog = page.locator('.jp-EnvManager-VersionsDialog');
      await dialog
        .locator('tr[data-version="1"] [data-action="compare"]')
        .click();
      await expect(dialog).toHaveCount(0);
      const diff = view.locator('.jp-EnvManager-Diff');
      await expect(diff.locator('.jp-EnvManager-DiffSummary')).toHaveText(
        '2 changes from local/pkgview v1 to local/pkgview v2'
      );
      await expect(diff.locator('[data-change="added"] li')).toHaveText([
        'beta 1.0'
      ]);
      await expect(diff.locator('[data-change="upgraded"] li')).toHaveText([
        'alpha 1.0 → 2.0'
      ]);
      await view.screenshot({ path: testInfo.outputPath('compare.png') });
    });

    await test.step('search a prefix, add it to the spec, build', async () => {
      await view.getByRole('tab', { name: 'Search and add' }).click();
      await view.getByLabel('Search packages by name prefix').fill('gam');
      const result = view.locator(
        '.jp-EnvManager-SearchResults tr[data-name="gamma"]'
      );
      await expect(result).toContainText('1.0');
      await view.screenshot({ path: testInfo.outputPath('search.png') });
      await result
        .getByRole('button', { name: 'Add gamma to the spec' })
        .click();
      const draft = page.locator('.jp-Dialog .jp-EnvManager-SpecDraft');
      await expect(draft.locator('.jp-EnvManager-DraftLine')).toHaveText([
        /^\s*alpha=2\.0$/,
        /^\+ gamma$/
      ]);
      await page
        .locator('.jp-Dialog-content')
        .screenshot({ path: testInfo.outputPath('draft.png') });
      await page
        .locator('.jp-Dialog')
        .getByRole('button', { name: 'Build' })
        .click();
      // The view reloads by itself when the build ends (a server event).
      await expect(result.locator('.jp-mod-installed')).toHaveText(
        'installed 1.0',
        {
          timeout: 90_000
        }
      );
      await view.getByRole('tab', { name: 'Installed' }).click();
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v3)'
      );
      await expect(tableRow('gamma').locator('.jp-mod-requested')).toHaveText(
        'requested'
      );
      const spec = (
        await (await request.get(`${baseURL}/${API}/local/${NAME}`)).json()
      ).spec;
      expect(spec.conda).toEqual(['alpha=2.0', 'gamma']);
    });

    // The README's screenshot: the view alone (sidebar closed, toasts hidden).
    await view.locator('.jp-EnvManager-PackagesFilter input').fill('');
    await page.sidebar.close('left');
    await page.addStyleTag({
      content: '.Toastify { display: none !important; }'
    });
    await page.mouse.move(0, 0);
    const box = (await view.boundingBox())!;
    const bottom = (await table.boundingBox())!;
    await page.screenshot({
      path: SCREENSHOT,
      clip: { ...box, height: bottom.y + bottom.height + 16 - box.y }
    });

    // The same in the dark theme (a test artifact, to check the colours).
    await page.theme.setDarkTheme();
    try {
      await view.screenshot({ path: testInfo.outputPath('packages-dark.png') });
    } finally {
      await page.theme.setLightTheme();
    }

    await test.step('remove a requested package through the spec', async () => {
      await tableRow('gamma')
        .getByRole('button', { name: 'Remove gamma' })
        .click();
      const draft = page.locator('.jp-Dialog .jp-EnvManager-SpecDraft');
      await expect(draft.locator('.jp-EnvManager-DraftLine')).toHaveText([
        /^\s*alpha=2\.0$/,
        /^- gamma$/
      ]);
      await page
        .locator('.jp-Dialog')
        .getByRole('button', { name: 'Build' })
        .click();
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v4)',
        {
          timeout: 90_000
        }
      );
      await expect(tableRow('gamma')).toHaveCount(0);
    });

    await test.step('the tab comes back after a reload', async () => {
      await saved;
      // (Galata's reload would wait for a Launcher: the restored tab is shown.)
      await page.reload({ waitForIsReady: false } as any);
      await page.waitForSelector('#jupyterlab-splash', { state: 'detached' });
      await expect(
        page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', {
          hasText: `Packages: ${NAME}`
        })
      ).toHaveCount(1);
      await expect(view.locator('.jp-EnvManager-PackagesCount')).toContainText(
        '(v4)'
      );
    });
  });
});
