import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext, Page } from '@playwright/test';
import { API, expand, PANEL, remove, row } from './helpers';

/**
 * Pinned notebooks in the Lab, against the real server, the local test channel
 * (alpha 1.0 / 2.0, each with share/alpha/VERSION) and wheelhouse
 * (envmgr-hello 1.0 / 2.0): pin from the status bar, see "(pinned)", rebuild
 * the environment, reopen the notebook and see it run on the pinned version;
 * pin with `%envmgr pin` in a cell and unpin from the status bar; a pin whose
 * lock hash does not match is refused, naming both hashes, and no other kernel
 * starts.
 */

const NAME = 'pinned';
const KERNEL = `envmgr-${NAME}`;
const PRINT_VERSIONS =
  'import os, sys, envmgr_hello\n' +
  "print(open(os.path.join(sys.prefix, 'share', 'alpha', 'VERSION')).read().strip(), envmgr_hello.__version__)";

/**
 * Build the environment with these versions of alpha and envmgr-hello, and
 * wait (bounded) until that build is the version in use.
 */
async function buildWith(
  request: APIRequestContext,
  baseURL: string,
  version: string,
  create: boolean
): Promise<number> {
  const spec = { conda: [`alpha=${version}`], pip: [`envmgr-hello==${version}`] };
  const url = `${baseURL}/${API}/local/${NAME}`;
  if (create) {
    const created = await request.post(`${baseURL}/${API}`, {
      data: { name: NAME, ...spec, build: true }
    });
    expect(created.status()).toBe(201);
  } else {
    expect((await request.patch(url, { data: spec })).status()).toBe(200);
    expect((await request.post(`${url}/builds`)).status()).toBe(202);
  }
  let version_ = 0;
  await expect
    .poll(
      async () => {
        const env = await (await request.get(url)).json();
        const build = env.latest_build;
        if (build && ['failed', 'cancelled', 'interrupted'].includes(build.status)) {
          return `build ${build.version} ${build.status}: ${build.error}`;
        }
        version_ = env.version;
        return env.status === 'ready' && build?.version === env.version
          ? `ready ${JSON.stringify(env.spec.pip)}`
          : env.status;
      },
      { message: `build ${NAME} with ${version}`, timeout: 120_000 }
    )
    .toBe(`ready ${JSON.stringify(spec.pip)}`);
  return version_;
}

/**
 * The kernel of the notebook's session, once it is idle (bounded wait).
 */
async function waitForKernel(
  request: APIRequestContext,
  baseURL: string,
  path: string,
  kernel: string
): Promise<void> {
  await expect
    .poll(
      async () => {
        const sessions = await (await request.get(`${baseURL}/api/sessions`)).json();
        const session = sessions.find((s: any) => s.path === path);
        return session?.kernel
          ? `${session.kernel.name} ${session.kernel.execution_state}`
          : `no kernel (sessions: ${sessions.map((s: any) => s.path).join(', ')})`;
      },
      { message: `the kernel of ${path}`, timeout: 60_000 }
    )
    .toBe(`${kernel} idle`);
}

async function notebookJSON(
  request: APIRequestContext,
  baseURL: string,
  path: string
): Promise<any> {
  const reply = await request.get(`${baseURL}/api/contents/${path}?content=1`);
  expect(reply.status()).toBe(200);
  return (await reply.json()).content;
}

/**
 * Run the cell printing alpha's and envmgr-hello's versions.
 */
async function versionsRun(page: Page, cell = 0): Promise<string | undefined> {
  expect(await page.notebook.runCell(cell)).toBe(true);
  return (await page.notebook.getCellTextOutput(cell))?.[0]?.trim();
}

async function openMenu(page: Page): Promise<void> {
  await page.locator('.jp-EnvManager-StatusButton').click();
  await expect(page.locator('.jp-EnvManager-PinMenu')).toBeVisible();
}

test.describe('Pinned notebooks', () => {
  // Two builds of a few packages, a few kernel starts.
  test.setTimeout(300_000);

  test.afterEach(async ({ request, baseURL }) => {
    const sessions = await (await request.get(`${baseURL}/api/sessions`)).json();
    for (const session of sessions) {
      if (session.kernel?.name?.startsWith(KERNEL)) {
        await request.delete(`${baseURL}/api/sessions/${session.id}`);
      }
    }
    await remove(request, baseURL!, 'local', NAME);
  });

  test('pin from the status bar, rebuild, reopen on the pinned version', async ({
    page,
    request,
    baseURL,
    tmpPath
  }) => {
    const status = page.locator('.jp-EnvManager-StatusButton');
    const file = 'analysis.ipynb';
    const path = `${tmpPath}/${file}`;

    await test.step('a notebook on the environment, version 1', async () => {
      expect(await buildWith(request, baseURL!, '1.0', true)).toBe(1);
      await page.notebook.createNew(file, { kernel: KERNEL });
      await page.notebook.setCell(0, 'code', PRINT_VERSIONS);
      expect(await versionsRun(page)).toBe('1.0 1.0');
      await expect(status).toHaveText(`${NAME} v1`);
    });

    await test.step('pin it from the status bar', async () => {
      await openMenu(page);
      await page.locator('.jp-EnvManager-PinMenu .lm-Menu-item', { hasText: 'Pin to v1' }).click();
      await expect(status).toHaveText(`${NAME} v1 (pinned)`);
      await expect(status).toHaveClass(/jp-mod-pinned/);
      await waitForKernel(request, baseURL!, path, `${KERNEL}.v1`);
      expect(await versionsRun(page)).toBe('1.0 1.0');
      await page.notebook.save();
      const nb = await notebookJSON(request, baseURL!, path);
      expect(nb.metadata.envmgr).toMatchObject({ scope: 'local', name: NAME, version: 1 });
      expect(nb.metadata.envmgr.lock_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(nb.metadata.kernelspec.name).toBe(`${KERNEL}.v1`);
      await page.notebook.close(true);
    });

    await test.step('rebuild the environment: version 2 is in use', async () => {
      await request.delete(`${baseURL}/api/sessions/${await sessionId(request, baseURL!, path)}`);
      expect(await buildWith(request, baseURL!, '2.0', false)).toBe(2);
      // The environment's own kernel now runs version 2.
      await page.notebook.createNew('unpinned.ipynb', { kernel: KERNEL });
      await page.notebook.setCell(0, 'code', PRINT_VERSIONS);
      expect(await versionsRun(page)).toBe('2.0 2.0');
      await expect(status).toHaveText(`${NAME} v2`);
      await page.notebook.close(true);
    });

    await test.step('the reopened notebook runs on version 1', async () => {
      await page.notebook.openByPath(path);
      await expect(status).toHaveText(`${NAME} v1 → v2 available`);
      await waitForKernel(request, baseURL!, path, `${KERNEL}.v1`);
      expect(await versionsRun(page)).toBe('1.0 1.0');
    });

    await test.step('the panel shows the versions on disk and the pin', async () => {
      await page.sidebar.openTab(PANEL);
      const envRow = row(page, 'local', NAME);
      await expand(envRow);
      await expect(envRow.locator('.jp-EnvManager-Materialized')).toContainText(
        'versions on disk (v1, v2)'
      );
      await expect(envRow.locator('.jp-EnvManager-Pinned')).toContainText('v1');
    });

    await test.step('moving the pin to the version in use', async () => {
      await page.notebook.activate(file);
      await openMenu(page);
      await page.locator('.jp-EnvManager-PinMenu .lm-Menu-item', { hasText: 'Pin to v2' }).click();
      await expect(status).toHaveText(`${NAME} v2 (pinned)`);
      await waitForKernel(request, baseURL!, path, `${KERNEL}.v2`);
      expect(await versionsRun(page)).toBe('2.0 2.0');
      await page.notebook.close(true);
    });
  });

  test('%envmgr pin in a cell, unpin from the status bar', async ({
    page,
    request,
    baseURL,
    tmpPath
  }) => {
    const status = page.locator('.jp-EnvManager-StatusButton');
    const file = 'magic.ipynb';
    const path = `${tmpPath}/${file}`;
    expect(await buildWith(request, baseURL!, '1.0', true)).toBe(1);
    await page.notebook.createNew(file, { kernel: KERNEL });
    await page.notebook.setCell(0, 'code', '%load_ext jupyter_env_manager\n%envmgr pin');
    expect(await page.notebook.runCell(0)).toBe(true);
    const output = page.locator('.jp-EnvManager-PinOutput');
    await expect(output).toHaveText(
      `Pinned this notebook to ${NAME} v1 (kernel ${KERNEL}.v1)`
    );
    await expect(status).toHaveText(`${NAME} v1 (pinned)`);
    await waitForKernel(request, baseURL!, path, `${KERNEL}.v1`);
    await expect(output).toHaveAttribute('data-state', 'done');

    await openMenu(page);
    await page.locator('.jp-EnvManager-PinMenu .lm-Menu-item', { hasText: 'Unpin' }).click();
    await expect(status).toHaveText(`${NAME} v1`);
    await waitForKernel(request, baseURL!, path, KERNEL);
    await page.notebook.save();
    const nb = await notebookJSON(request, baseURL!, path);
    expect(nb.metadata.envmgr).toBeUndefined();
    expect(nb.metadata.kernelspec.name).toBe(KERNEL);
    // The output was applied once; saved as such, it is not applied again.
    expect(nb.cells[0].outputs[0].metadata['application/vnd.jupyter-env-manager.pin+json']).toEqual(
      { applied: true }
    );
    await page.notebook.close(true);
    await page.notebook.openByPath(path);
    await expect(output).toHaveAttribute('data-state', 'done');
    await waitForKernel(request, baseURL!, path, KERNEL);
    await expect(status).toHaveText(`${NAME} v1`);
    expect(
      await page.evaluate(() =>
        (window as any).jupyterapp.shell.currentWidget.model.getMetadata('envmgr')
      )
    ).toBeUndefined();
    await page.notebook.close(true);
  });

  test('a pin whose lock does not match is refused, and no other kernel starts', async ({
    page,
    request,
    baseURL,
    tmpPath
  }) => {
    expect(await buildWith(request, baseURL!, '1.0', true)).toBe(1);
    const wrong = 'f'.repeat(64);
    const path = `${tmpPath}/tampered.ipynb`;
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {
        envmgr: { scope: 'local', name: NAME, version: 1, lock_sha256: wrong },
        kernelspec: { name: `${KERNEL}.v1`, display_name: 'pinned', language: 'python' }
      },
      cells: [
        { cell_type: 'code', id: 'a1', metadata: {}, source: PRINT_VERSIONS, outputs: [], execution_count: null }
      ]
    };
    const put = await request.put(`${baseURL}/api/contents/${path}`, {
      data: { type: 'notebook', format: 'json', content: nb }
    });
    expect(put.status()).toBeLessThan(300);
    await page.notebook.openByPath(path);
    const dialog = page.locator('.jp-Dialog');
    const message = dialog.locator('.jp-EnvManager-PinProblemMessage');
    await expect(message).toContainText(wrong);
    const recorded = /[0-9a-f]{64}/g;
    const hashes = (await message.textContent())!.match(recorded)!;
    expect(hashes).toHaveLength(2);
    expect(new Set(hashes).size).toBe(2);
    await dialog.getByRole('button', { name: 'Keep the pin' }).click();
    await expect(dialog).toHaveCount(0);
    await expect(page.locator('.jp-EnvManager-StatusButton')).toHaveText(`${NAME} v1 (pinned)`);
    // Its session is initialized, with no kernel: none started in its place.
    await expect
      .poll(() =>
        page.evaluate(() => {
          const context = (window as any).jupyterapp.shell.currentWidget?.sessionContext;
          return context
            ? `${context.isReady} ${context.session?.kernel?.name ?? 'no kernel'}`
            : 'no notebook';
        })
      )
      .toBe('true no kernel');
    const sessions = await (await request.get(`${baseURL}/api/sessions`)).json();
    expect(sessions.filter((s: any) => s.path === path)).toEqual([]);
    await page.notebook.close(true);
  });
});

async function sessionId(
  request: APIRequestContext,
  baseURL: string,
  path: string
): Promise<string> {
  const sessions = await (await request.get(`${baseURL}/api/sessions`)).json();
  return sessions.find((s: any) => s.path === path)?.id ?? 'none';
}
