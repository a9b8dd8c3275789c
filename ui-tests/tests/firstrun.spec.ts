import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import type { Page } from '@playwright/test';
import { API, formDialog, PANEL, remove, row } from './helpers';

/**
 * What a new user sees: every banner and badge readable (WCAG AA, 4.5:1) in
 * the light and the dark theme, computed from the colours the browser
 * computes; long text wraps inside the sidebar.
 */
const GOOD = 'firstrun-good';
const BAD = 'firstrun-bad';
const MOVED = 'firstrun-moved';

interface IContrast {
  what: string;
  text: string;
  ratio: number;
}

/**
 * The contrast of every banner, badge and phase on the page: its text colour
 * against the first opaque background at or above it (alpha blended).
 */
async function contrasts(page: Page): Promise<IContrast[]> {
  return page.evaluate(() => {
    const parse = (value: string): number[] => {
      const m = value.match(/rgba?\(([^)]+)\)/);
      if (!m) {
        return [0, 0, 0, 0];
      }
      const parts = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
    };
    const over = (top: number[], bottom: number[]): number[] => {
      const a = top[3];
      return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat(1);
    };
    const background = (el: Element | null): number[] => {
      const layers: number[][] = [];
      for (let node = el; node; node = node.parentElement) {
        const c = parse(getComputedStyle(node).backgroundColor);
        if (c[3] > 0) {
          layers.push(c);
          if (c[3] >= 1) {
            break;
          }
        }
      }
      let result = [255, 255, 255, 1];
      for (const layer of layers.reverse()) {
        result = over(layer, result);
      }
      return result;
    };
    const luminance = (c: number[]): number => {
      const [r, g, b] = c.slice(0, 3).map(v => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const selectors = [
      '.jp-EnvManager-Badge',
      '.jp-EnvManager-Error',
      '.jp-EnvManager-Phase',
      '.jp-EnvManager-EnvError',
      '.jp-EnvManager-Empty'
    ];
    const found: { what: string; text: string; ratio: number }[] = [];
    for (const selector of selectors) {
      for (const el of Array.from(document.querySelectorAll(selector))) {
        if (!(el as HTMLElement).offsetParent) {
          continue; // not shown
        }
        const bg = background(el);
        const fg = over(parse(getComputedStyle(el).color), bg);
        const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
        found.push({
          what: `${selector}${Array.from(el.classList)
            .filter(c => c.startsWith('jp-mod-'))
            .map(c => '.' + c)
            .join('')}`,
          text: (el.textContent ?? '').slice(0, 40),
          ratio: Math.round(((l1 + 0.05) / (l2 + 0.05)) * 100) / 100
        });
      }
    }
    return found;
  });
}

async function setTheme(page: Page, theme: string): Promise<void> {
  await page.evaluate(async name => {
    await (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme: name
    });
  }, theme);
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-name',
    theme
  );
}

test.describe('First run', () => {
  test.beforeEach(async ({ request, baseURL }) => {
    for (const [name, conda] of [
      [GOOD, ['alpha']],
      [BAD, ['needs-missing']]
    ] as const) {
      const created = await request.post(`${baseURL}/${API}`, {
        data: { scope: 'local', name, conda, build: true }
      });
      expect(created.status()).toBe(201);
    }
    for (const [name, status] of [
      [GOOD, 'ready'],
      [BAD, 'failed']
    ]) {
      await expect
        .poll(
          async () =>
            (await (await request.get(`${baseURL}/${API}/local/${name}`)).json())
              .status,
          { timeout: 180_000 }
        )
        .toBe(status);
    }
  });

  test.afterEach(async ({ request, baseURL, page }) => {
    await setTheme(page, 'JupyterLab Light');
    await remove(request, baseURL!, 'local', GOOD);
    await remove(request, baseURL!, 'local', BAD);
    await remove(request, baseURL!, 'local', MOVED);
  });

  for (const theme of [
    'JupyterLab Light',
    'JupyterLab Dark',
    'JupyterLab Dark High Contrast'
  ]) {
    test(`banners and badges meet 4.5:1 in ${theme}`, async ({ page }) => {
      await setTheme(page, theme);
      await page.sidebar.openTab(PANEL);
      await expect(row(page, 'local', GOOD)).toBeVisible();
      await expect(
        row(page, 'local', BAD).locator('.jp-EnvManager-Badge.jp-mod-failed')
      ).toBeVisible();
      await page.evaluate(async name => {
        await (window as any).jupyterapp.commands.execute(
          'env-manager:show-log',
          { scope: 'local', name }
        );
      }, BAD);
      const banner = page.locator(
        '.jp-EnvManager-Log:visible .jp-EnvManager-LogMessage.jp-EnvManager-Error'
      );
      await expect(banner).toContainText('envmgr-no-such-package');

      const found = await contrasts(page);
      console.log(
        `${theme}: ${found.length} elements, lowest ${Math.min(
          ...found.map(f => f.ratio)
        )}:1`
      );
      const kinds = new Set(found.map(f => f.what.split('.jp-mod-')[0]));
      expect(kinds).toContain('.jp-EnvManager-Badge');
      expect(kinds).toContain('.jp-EnvManager-Error');
      expect(kinds).toContain('.jp-EnvManager-Phase');
      expect(found.filter(f => f.ratio < 4.5)).toEqual([]);
    });
  }

  test('long text wraps inside the sidebar', async ({ page }) => {
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    await expect(panel).toBeVisible();
    // The narrowest sidebar a user can make, and the longest words we show.
    const overflowing = await page.evaluate(id => {
      const root = document.getElementById(id)!;
      root.style.width = '220px';
      const probe = document.createElement('p');
      probe.className = 'jp-EnvManager-Empty';
      probe.textContent =
        'No shared store is configured. Set c.EnvManager.shared_root (or the environment variable JUPYTER_ENV_MANAGER_SHARED_ROOT) on the server.';
      const banner = document.createElement('div');
      banner.className = 'jp-EnvManager-Error';
      banner.textContent =
        'Channel https://conda.anaconda.org/conda-forge/ could not be reached: the host name does not resolve (DNS).';
      const body = root.querySelector('.jp-EnvManager-StoreBody') ?? root;
      body.append(probe, banner);
      const result = [probe, banner]
        .filter(el => el.scrollWidth > el.clientWidth + 1)
        .map(el => el.className);
      probe.remove();
      banner.remove();
      return result;
    }, PANEL);
    expect(overflowing).toEqual([]);
  });

  test('a bundle exported by one environment is imported from the panel', async ({
    page,
    request,
    baseURL
  }) => {
    const exported = await request.get(
      `${baseURL}/${API}/local/${GOOD}/export?format=bundle`
    );
    expect(exported.status()).toBe(200);
    // (over Playwright's 50 MB buffer limit: a file)
    const tar = test.info().outputPath(`${GOOD}.tar`);
    fs.writeFileSync(tar, await exported.body());
    await page.sidebar.openTab(PANEL);
    const panel = page.locator(`#${PANEL}`);
    // Connected and listed: its commands are enabled (a click before may be lost).
    await expect(row(page, 'local', GOOD)).toBeVisible();
    await panel.getByRole('button', { name: 'Import environment.yml' }).click();
    const dialog = await formDialog(page);
    await dialog.locator('input[type="file"]').setInputFiles(tar);
    await expect(dialog.locator(`[data-bundle="${GOOD}.tar"]`)).toBeVisible();
    await dialog.locator('input[name="name"]').fill(MOVED);
    await dialog.getByRole('button', { name: 'Import', exact: true }).click();
    await expect(dialog).toHaveCount(0, { timeout: 60_000 }); // the upload
    await expect(
      row(page, 'local', MOVED).locator('.jp-EnvManager-Badge.jp-mod-ready')
    ).toBeVisible({ timeout: 120_000 });
  });
});
