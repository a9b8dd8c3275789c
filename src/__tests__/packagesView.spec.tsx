import type { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import type { Event } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import { EnvManagerAPI } from '../api';
import { EnvManagerModel } from '../model';
import { addCommands } from '../commands';
import {
  CommandIDs,
  EventSchemas,
  IEnv,
  IPackage,
  IPackageList,
  Scope
} from '../tokens';
import type { EnvPanel } from '../widgets/EnvPanel';
import { PackagesWidget } from '../widgets/PackagesWidget';
import { actions, build, env, serverInfo, until } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

class FakeEventStream extends Signal<unknown, Event.Emission> {
  constructor() {
    super({});
  }
}

function pkg(name: string, version: string, requested = false): IPackage {
  return {
    name,
    version,
    build: 'h0_0',
    channel: 'test',
    kind: 'conda',
    size: 2_500,
    requested
  };
}

/**
 * The server's locks, by version.
 */
const LOCKS: Record<number, IPackage[]> = {
  1: [pkg('alpha', '1.0', true), pkg('python', '3.11.7', true)],
  2: [
    pkg('alpha', '2.0', true),
    pkg('beta', '1.0'),
    pkg('python', '3.11.7', true)
  ],
  3: [
    pkg('alpha', '2.0', true),
    pkg('beta', '1.0'),
    pkg('gamma', '1.0', true),
    pkg('python', '3.11.7', true)
  ]
};

describe('PackagesWidget', () => {
  let server: MockEnvServer;
  let events: FakeEventStream;
  let model: EnvManagerModel;
  let widget: PackagesWidget;
  let demo: IEnv;

  const demoAt = (version: number, denied = {}): IEnv =>
    env({
      name: 'demo',
      version,
      spec: {
        python: '3.11',
        conda: version >= 3 ? ['alpha', 'gamma'] : ['alpha'],
        pip: [],
        channels: [],
        base: null
      },
      actions: actions(denied),
      versions: Object.keys(LOCKS)
        .map(Number)
        .filter(v => v <= version)
        .map(v => build({ version: v }))
    });

  beforeEach(async () => {
    demo = demoAt(2);
    server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo() }))
      .on('GET', 'environments', ({ query }) => ({
        json: { environments: query.get('scope') === 'shared' ? [] : [demo] }
      }))
      .on('GET', 'environments/local/demo', () => ({ json: demo }))
      .on('GET', 'environments/local/demo/packages', ({ query }) => {
        const version = Number(query.get('version') || demo.version);
        const list: IPackageList = {
          scope: 'local',
          name: 'demo',
          version,
          packages: LOCKS[version]
        };
        return { json: list };
      })
      .on('GET', 'environments/local/demo/diff', ({ query }) => ({
        json: {
          from: { scope: 'local', name: 'demo', version: 1 },
          to: { scope: 'local', name: 'demo', version: 2 },
          added: [{ name: 'beta', kind: 'conda', version: '1.0' }],
          removed: [],
          upgraded: [
            {
              name: 'alpha',
              kind: 'conda',
              from: query.get('from') === '1' ? '1.0' : '?',
              to: '2.0'
            }
          ],
          downgraded: [],
          rebuilt: []
        }
      }));
    events = new FakeEventStream();
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      events: events as unknown as Event.Stream,
      frontendVersion: '0.1.0',
      reloadDelayMs: 0
    });
    await model.connect();
    widget = new PackagesWidget({
      model,
      ref: { scope: 'local', name: 'demo' },
      trans,
      openLog: jest.fn()
    });
    Widget.attach(widget, document.body);
    await widget.pm.load();
    await until(() => rows().length > 0);
  });

  afterEach(() => {
    widget.dispose();
    model.dispose();
  });

  const rows = () =>
    Array.from(
      widget.node.querySelectorAll<HTMLTableRowElement>(
        '.jp-EnvManager-PackagesTable tbody tr'
      )
    );
  const names = () => rows().map(row => row.dataset.name);
  const type = (selector: string, value: string) => {
    const input = widget.node.querySelector<HTMLInputElement>(selector)!;
    const setter = Object.getOwnPropertyDescriptor(
      HTMLInputElement.prototype,
      'value'
    )!.set!;
    setter.call(input, value);
    input.dispatchEvent(new window.Event('input', { bubbles: true }));
  };

  it('lists the packages of the version in use, requested ones marked', () => {
    expect(names()).toEqual(['alpha', 'beta', 'python']);
    const badges = rows().map(
      row => !!row.querySelector('.jp-EnvManager-Badge.jp-mod-requested')
    );
    expect(badges).toEqual([true, false, true]);
    expect(rows()[0].textContent).toContain('2.50 kB');
    expect(widget.node.textContent).toContain('3 of 3 packages (v2)');
  });

  it('filters as the user types, and by requested only', async () => {
    type('.jp-EnvManager-PackagesFilter input', 'be');
    await until(() => names().length === 1);
    expect(names()).toEqual(['beta']);
    type('.jp-EnvManager-PackagesFilter input', '');
    await until(() => names().length === 3);
    widget.node
      .querySelector<HTMLInputElement>('.jp-EnvManager-Toggle input')!
      .click();
    await until(() => names().length === 2);
    expect(names()).toEqual(['alpha', 'python']);
  });

  it('keeps the filter when the user comes back from another tab', async () => {
    type('.jp-EnvManager-PackagesFilter input', 'be');
    await until(() => names().length === 1);
    widget.pm.tab = 'search';
    await until(() => rows().length === 0);
    widget.pm.tab = 'installed';
    await until(() => rows().length > 0);
    expect(names()).toEqual(['beta']);
    expect(
      widget.node.querySelector<HTMLInputElement>(
        '.jp-EnvManager-PackagesFilter input'
      )!.value
    ).toBe('be');
  });

  it('shows another version when chosen', async () => {
    await widget.pm.setVersion(1);
    await until(() => names().length === 2);
    expect(names()).toEqual(['alpha', 'python']);
    const packages = server.calls.filter(c => c.path.endsWith('/packages'));
    expect(packages[packages.length - 1].query.get('version')).toBe('1');
  });

  it("disables changes with the server's reason; remove only for spec packages", async () => {
    const buttons = (name: string) =>
      Array.from(
        rows()
          .find(row => row.dataset.name === name)!
          .querySelectorAll<HTMLButtonElement>('button')
      );
    const [update, remove] = buttons('beta');
    expect(update.getAttribute('aria-disabled')).toBe('false');
    expect(remove.getAttribute('aria-disabled')).toBe('true');
    expect(remove.title).toContain('dependency');
    expect(buttons('alpha')[1].getAttribute('aria-disabled')).toBe('false');

    demo = demoAt(2, { edit: 'Wait for the running build to finish' });
    await model.reload(demo);
    await until(
      () => buttons('alpha')[0].getAttribute('aria-disabled') === 'true'
    );
    expect(buttons('alpha')[0].title).toBe(
      'Wait for the running build to finish'
    );
  });

  it('compares two versions, grouped', async () => {
    await widget.pm.compare(
      { ref: widget.ref, version: 1 },
      { ref: widget.ref, version: 2 }
    );
    widget.pm.tab = 'compare';
    await until(
      () => widget.node.querySelectorAll('.jp-EnvManager-DiffGroup').length > 0
    );
    const groups = Array.from(
      widget.node.querySelectorAll<HTMLElement>('.jp-EnvManager-DiffGroup')
    ).map(g => `${g.dataset.change}:${g.textContent}`);
    expect(groups[0]).toContain('added');
    expect(groups[0]).toContain('beta');
    expect(groups[1]).toContain('alpha');
    expect(groups[1]).toContain('1.0 → 2.0');
    expect(widget.node.textContent).toContain(
      '2 changes from local/demo v1 to local/demo v2'
    );
  });

  it('reloads when a build of its environment ends', async () => {
    demo = demoAt(3);
    const emit = (name: string) =>
      events.emit({
        schema_id: EventSchemas.build,
        action: 'finished',
        scope: 'local',
        name,
        version: 3,
        status: 'succeeded',
        phase: null
      } as unknown as Event.Emission);
    emit('other');
    expect(widget.pm.reloads).toBe(0);
    emit('demo');
    await until(() => names().includes('gamma'));
    expect(widget.pm.reloads).toBe(1);
    expect(widget.node.textContent).toContain('4 of 4 packages (v3)');
  });

  it('ignores a search answer that a newer one replaced', async () => {
    let release: () => void = () => undefined;
    server.on('GET', 'packages/search', async ({ query }) => {
      if (query.get('q') === 'a') {
        await new Promise<void>(resolve => (release = resolve));
      }
      return {
        json: {
          query: query.get('q'),
          channels: ['test'],
          packages: [
            {
              name: `${query.get('q')}-pkg`,
              latest: '1.0',
              versions: ['1.0'],
              channels: ['test']
            }
          ]
        }
      };
    });
    const slow = widget.pm.runSearch('a');
    await widget.pm.runSearch('al');
    release();
    await slow;
    expect(widget.pm.search.results?.map(r => r.name)).toEqual(['al-pkg']);
    const call = server.calls.find(c => c.path === 'packages/search')!;
    expect(call.query.get('scope')).toBe('local');
    expect(call.query.get('name')).toBe('demo');
  });
});

describe('EnvManagerAPI.install', () => {
  it('posts to install or uninstall and returns the Location', async () => {
    const server = new MockEnvServer()
      .on('POST', 'environments/local/demo/install', () => ({
        status: 202,
        json: { build: build({ version: 3, status: 'queued' }) },
        headers: { Location: '/env-manager/environments/local/demo/builds/3' }
      }))
      .on('POST', 'environments/local/demo/uninstall', () => ({
        status: 400,
        json: {
          message: "Package 'x' is not in the pip packages",
          field: 'pip'
        }
      }));
    const api = new EnvManagerAPI(server.settings);
    const ref = { scope: 'local' as const, name: 'demo' };
    const reply = await api.install(ref, ['gamma']);
    expect(reply.build.version).toBe(3);
    expect(reply.location).toBe(
      '/env-manager/environments/local/demo/builds/3'
    );
    expect(server.calls[0].body).toEqual({ packages: ['gamma'], pip: false });
    await expect(
      api.install(ref, ['x'], { pip: true, remove: true })
    ).rejects.toThrow("Package 'x' is not in the pip packages");
    expect(server.calls[1].body).toEqual({ packages: ['x'], pip: true });
  });
});

describe('the open-packages command', () => {
  it('is disabled with a reason before a build; opens one tab per environment, on compare', async () => {
    let demo = env({ name: 'demo', version: null, versions: [] });
    const server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo() }))
      .on('GET', 'environments', ({ query }) => ({
        json: { environments: query.get('scope') === 'shared' ? [] : [demo] }
      }))
      .on('GET', 'environments/local/demo', () => ({ json: demo }))
      .on('GET', 'environments/local/demo/packages', () => ({
        json: { scope: 'local', name: 'demo', version: 2, packages: LOCKS[2] }
      }))
      .on('GET', 'environments/local/demo/diff', ({ query }) => ({
        json: {
          from: {
            scope: 'local',
            name: 'demo',
            version: Number(query.get('from'))
          },
          to: { scope: 'local', name: 'demo', version: 2 },
          added: [],
          removed: [],
          upgraded: [],
          downgraded: [],
          rebuilt: []
        }
      }));
    const model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    await model.connect();
    const commands = new CommandRegistry();
    const added: Widget[] = [];
    const app = {
      commands,
      shell: {
        activateById: () => undefined,
        add: (widget: Widget) => added.push(widget)
      }
    } as unknown as JupyterFrontEnd;
    addCommands(app, {
      model,
      panel: { id: 'panel' } as EnvPanel,
      trans,
      palette: null,
      currentEnv: () => null,
      logPollIntervalMs: () => 1000,
      logs: new WidgetTracker({ namespace: 'l' }),
      packages: new WidgetTracker<MainAreaWidget<PackagesWidget>>({
        namespace: 'p'
      })
    });
    const ref = { scope: 'local' as Scope, name: 'demo' };
    expect(commands.isEnabled(CommandIDs.openPackages, ref)).toBe(false);
    expect(commands.caption(CommandIDs.openPackages, ref)).toBe(
      'Build it first: it has no version to list'
    );

    demo = env({
      name: 'demo',
      version: 2,
      versions: [build({ version: 1 }), build({ version: 2 })]
    });
    await model.reload(demo);
    expect(commands.isEnabled(CommandIDs.openPackages, ref)).toBe(true);
    const first = await commands.execute(CommandIDs.openPackages, ref);
    const again = await commands.execute(CommandIDs.openPackages, {
      ...ref,
      compare: 1
    });
    expect(again).toBe(first);
    expect(added).toHaveLength(1);
    expect(first).toBeInstanceOf(MainAreaWidget);
    const pm = (first as MainAreaWidget<PackagesWidget>).content.pm;
    expect(pm.tab).toBe('compare');
    await until(() => pm.comparison?.diff !== null);
    const diffCall = server.calls.find(c => c.path.endsWith('/diff'))!;
    expect(diffCall.query.get('from')).toBe('1');
    expect(diffCall.query.get('to')).toBe('2');
    (first as Widget).dispose();
    model.dispose();
  });
});
