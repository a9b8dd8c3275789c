import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { EnvManagerAPI } from '../api';
import { EnvManagerModel } from '../model';
import { EnvPanel } from '../widgets/EnvPanel';
import { env, serverInfo, until } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

describe('EnvPanel', () => {
  let model: EnvManagerModel;
  let panel: EnvPanel;
  let access: 'write' | 'read';

  beforeEach(async () => {
    access = 'write';
    const server = new MockEnvServer()
      .on('GET', 'info', () => ({
        json: serverInfo({ shared_access: access })
      }))
      .on('GET', 'environments', ({ query }) => ({
        json: {
          environments:
            query.get('scope') === 'shared'
              ? [env({ scope: 'shared', name: 'team' })]
              : [env({ name: 'a' }), env({ name: 'b' })]
        }
      }));
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

  it('hides the stores until connected', () => {
    expect(panel.widgets.every(w => w.isHidden)).toBe(true);
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
