import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { AccordionPanel, Widget } from '@lumino/widgets';
import { EnvManagerAPI } from '../api';
import { EnvManagerModel } from '../model';
import { ROWS_SHOWN } from '../components/EnvList';
import { EnvPanel } from '../widgets/EnvPanel';
import { env, serverInfo, storesServer, until } from './fixtures';

const trans = nullTranslator.load('jupyter_env_manager');

describe('EnvPanel', () => {
  let model: EnvManagerModel;
  let panel: EnvPanel;
  let access: 'write' | 'read';

  beforeEach(async () => {
    access = 'write';
    const server = storesServer(
      [env({ name: 'a' }), env({ name: 'b' })],
      [env({ scope: 'shared', name: 'team' })],
      () => serverInfo({ shared_access: access })
    );
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    panel = new EnvPanel({ model, commands: new CommandRegistry(), trans });
    Widget.attach(panel, document.body);
  });

  afterEach(() => {
    panel.dispose();
    model.dispose();
  });

  const labels = () => panel.widgets.map(w => w.title.label);

  it('has a section per store, titled with its count', async () => {
    await model.connect();
    expect(labels()).toEqual(['Local (2)', 'Shared (1)']);
    const local = panel.widgets[0];
    await until(
      () => local.node.querySelectorAll('li.jp-EnvManager-Env').length === 2
    );
    expect(local.node.dataset.scope).toBe('local');
  });

  it('hides the stores until connected, not their sections', async () => {
    expect(panel.content.isHidden).toBe(true);
    // What the layout restorer saves as the sections' expansion: never
    // "collapsed" because the server had not answered yet.
    expect(panel.widgets.map(w => !w.isHidden)).toEqual([true, true]);
    await model.connect();
    expect(panel.content.isHidden).toBe(false);
  });

  it('keeps a section the user collapsed collapsed as the stores change', async () => {
    await model.connect();
    const accordion = panel.content as AccordionPanel;
    accordion.collapse(1);
    const shared = panel.widgets[1];
    expect(shared.isHidden).toBe(true);
    await model.refresh();
    await model.connect();
    expect(shared.isHidden).toBe(true);
    expect(accordion.titles[1].getAttribute('aria-expanded')).toBe('false');
    // Selecting one of its environments opens it.
    model.select({ scope: 'shared', name: 'team' });
    expect(shared.isHidden).toBe(false);
  });

  it('marks a shared store read-only for the user', async () => {
    access = 'read';
    await model.connect();
    const mark = document.querySelector<HTMLElement>(
      '.jp-EnvManager-ReadOnly'
    )!;
    expect(mark.textContent).toBe('read-only');
    expect(mark.classList.contains('lm-mod-hidden')).toBe(false);
  });

  it('adds sections of other extensions by rank', async () => {
    const last = new Widget();
    last.title.label = 'Last';
    const between = new Widget();
    between.title.label = 'Between';
    panel.addSection(last);
    panel.addSection(between, { rank: 150 });
    await model.connect();
    expect(labels()).toEqual(['Local (2)', 'Between', 'Shared (1)', 'Last']);
  });

  it('expands and collapses a row on click', async () => {
    await model.connect();
    const summary = () =>
      document.querySelector<HTMLElement>(
        'li[data-name="a"] .jp-EnvManager-EnvSummary'
      );
    await until(() => !!summary());
    summary()!.click();
    await until(() => summary()!.getAttribute('aria-expanded') === 'true');
    expect(
      document.querySelector('li[data-name="a"] .jp-EnvManager-EnvActions')
    ).not.toBeNull();
    summary()!.click();
    await until(() => summary()!.getAttribute('aria-expanded') === 'false');
  });

  it('expands and reveals a selected environment', async () => {
    // jsdom does not scroll.
    const scrolled = jest.fn();
    Element.prototype.scrollIntoView = scrolled;
    await model.connect();
    model.select({ scope: 'local', name: 'b' });
    await until(
      () =>
        document
          .querySelector('li[data-name="b"] .jp-EnvManager-EnvSummary')
          ?.getAttribute('aria-expanded') === 'true'
    );
    await until(() =>
      document.activeElement!.matches(
        'li[data-name="b"] .jp-EnvManager-EnvSummary'
      )
    );
    expect(scrolled).toHaveBeenCalled();
  });
});

describe('EnvPanel with thousands of environments', () => {
  const count = 450;
  let model: EnvManagerModel;
  let panel: EnvPanel;

  beforeEach(async () => {
    const names = Array.from(
      { length: count },
      (_, i) => `env-${String(i).padStart(4, '0')}`
    );
    const server = storesServer(names.map(name => env({ name })));
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    panel = new EnvPanel({ model, commands: new CommandRegistry(), trans });
    Widget.attach(panel, document.body);
    await model.connect();
  });

  afterEach(() => {
    panel.dispose();
    model.dispose();
  });

  const rows = () =>
    [...document.querySelectorAll<HTMLElement>('li.jp-EnvManager-Env')].map(
      li => li.dataset.name
    );
  const more = () =>
    document.querySelector<HTMLButtonElement>('.jp-EnvManager-ShowMore');

  it('renders the first rows and shows more on request', async () => {
    expect(panel.widgets[0].title.label).toBe(`Local (${count})`);
    await until(() => rows().length === ROWS_SHOWN);
    expect(rows()[0]).toBe('env-0000');
    expect(more()!.textContent).toBe(
      `Show ${ROWS_SHOWN} more (${count - ROWS_SHOWN} not shown)`
    );
    more()!.click();
    await until(() => rows().length === 2 * ROWS_SHOWN);
    expect(more()!.textContent).toBe(
      `Show ${count - 2 * ROWS_SHOWN} more (${count - 2 * ROWS_SHOWN} not shown)`
    );
    more()!.click();
    await until(() => rows().length === count);
    expect(more()).toBeNull();
  });

  it('renders a selected or filtered environment beyond them', async () => {
    Element.prototype.scrollIntoView = jest.fn(); // jsdom does not scroll
    await until(() => rows().length === ROWS_SHOWN);
    model.select({ scope: 'local', name: 'env-0420' });
    await until(() => rows().includes('env-0420'));
    expect(rows().length).toBe(ROWS_SHOWN + 1);
    model.select(null);
    model.filter = 'env-04';
    await until(() => rows().length === 50);
    expect(more()).toBeNull();
  });
});
