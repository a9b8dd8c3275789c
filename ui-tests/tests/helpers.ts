import { expect } from '@jupyterlab/galata';
import type { APIRequestContext, Locator, Page } from '@playwright/test';

/**
 * The id of the Environments panel.
 */
export const PANEL = 'jupyter-env-manager-panel';

/**
 * The REST route of the environments, below the server's base URL.
 */
export const API = 'env-manager/environments';

/**
 * The form dialog (new, edit, import) once JupyterLab focused its first field.
 * Its body renders asynchronously and the dialog focuses that field then: text
 * typed before (a test is faster than a person) went into that field instead.
 */
export async function formDialog(page: Page): Promise<Locator> {
  const dialog = page.locator('.jp-EnvManager-FormDialog');
  // As long as the first action on the dialog would wait for it (a busy machine).
  await expect(dialog.locator('.jp-Dialog-body :focus')).toHaveCount(1, {
    timeout: 60_000
  });
  return dialog;
}

/**
 * Delete an environment if it exists (cancelling its build first), so that the
 * other tests find the stores as they left them. Polls the server's answer
 * (bounded), never sleeps a fixed time.
 */
export async function remove(
  request: APIRequestContext,
  baseURL: string,
  scope: string,
  name: string
): Promise<void> {
  const url = `${baseURL}/${API}/${scope}/${name}`;
  await expect
    .poll(
      async () => {
        const response = await request.delete(url);
        if ([204, 404].includes(response.status())) {
          return 'deleted';
        }
        // 409: a build or copy is running; cancel it (the answer comes once
        // the cancel took effect) and try again.
        const env = await (await request.get(url)).json();
        const build = env.latest_build;
        if (build && ['queued', 'running'].includes(build.status)) {
          await request.post(`${url}/builds/${build.version}/cancel`);
        }
        return `${response.status()} ${await response.text()}`;
      },
      { message: `delete ${scope}/${name}`, timeout: 60_000 }
    )
    .toBe('deleted');
}

/**
 * The panel's row of one environment.
 */
export function row(page: Page, scope: string, name: string): Locator {
  return page.locator(`#${PANEL} li.jp-EnvManager-Env[data-scope="${scope}"][data-name="${name}"]`);
}

/**
 * The button of one action in an (expanded) row.
 */
export function action(envRow: Locator, command: string): Locator {
  return envRow.locator(`.jp-EnvManager-EnvActions [data-command="env-manager:${command}"]`);
}

/**
 * Expand a row (to reach its actions) unless it already is.
 */
export async function expand(envRow: Locator): Promise<void> {
  const summary = envRow.locator('.jp-EnvManager-EnvSummary');
  if ((await summary.getAttribute('aria-expanded')) !== 'true') {
    await summary.click();
  }
  await expect(summary).toHaveAttribute('aria-expanded', 'true');
}

/**
 * The title bar of a store's section (its label, count and marks).
 */
export function sectionTitle(page: Page, scope: string): Locator {
  return page.locator(
    `#${PANEL} .jp-AccordionPanel-title[aria-controls="jp-EnvManager-section-${scope}"]`
  );
}

/**
 * The text box of the panel's filter.
 */
export function filterBox(page: Page): Locator {
  return page.locator(`#${PANEL} .jp-EnvManager-Filter input`);
}
