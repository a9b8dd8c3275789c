import type { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { EnvManagerAPI } from '../api';
import { addCommands } from '../commands';
import { EnvManagerModel } from '../model';
import { CommandIDs } from '../tokens';
import type { EnvPanel } from '../widgets/EnvPanel';
import type { LogViewer } from '../widgets/LogViewer';
import { actions, build, env, READY_DENIED, serverInfo } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

describe('commands', () => {
  let server: MockEnvServer;
  let model: EnvManagerModel;
  let commands: CommandRegistry;

  beforeEach(async () => {
    server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo() }))
      .on('GET', 'environments', ({ query }) => ({
        json: {
          environments:
            query.get('scope') === 'shared'
              ? [
                  // What the server says of a shared store read-only for the
                  // user, while a build runs.
                  env({
                    scope: 'shared',
                    name: 'team',
                    status: 'building',
                    actions: actions({
                      build: 'The shared store is read-only for you',
                      edit: 'The shared store is read-only for you',
                      delete: 'The shared store is read-only for you',
                      revert: 'The shared store is read-only for you',
                      cancel: 'The shared store is read-only for you',
                      adopt: 'Already managed by the environment manager'
                    })
                  })
                ]
              : [
                  // A state the panel used to judge itself (building, never
                  // built): only the server's flags count.
                  env({
                    name: 'demo',
                    status: 'building',
                    version: null,
                    latest_build: build({ status: 'running' }),
                    actions: actions(READY_DENIED)
                  })
                ]
        }
      }))
      .on('POST', 'environments/local/demo/builds/1/cancel', () => ({
        json: build({ status: 'cancelled' })
      }))
      .on('GET', 'environments/local/demo', () => ({ json: env() }));
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    commands = new CommandRegistry();
    const app = {
      commands,
      shell: { activateById: () => undefined, add: () => undefined }
    } as unknown as JupyterFrontEnd;
    addCommands(app, {
      model,
      panel: { id: 'panel' } as EnvPanel,
      trans,
      palette: null,
      currentEnv: () => model.selected,
      logPollIntervalMs: () => 1000,
      logs: new WidgetTracker<MainAreaWidget<LogViewer>>({ namespace: 't' })
    });
  });

  afterEach(() => model.dispose());

  const local = { scope: 'local', name: 'demo' };
  const shared = { scope: 'shared', name: 'team' };

  it('say "not connected" before the server answered', () => {
    expect(commands.isEnabled(CommandIDs.build, local)).toBe(false);
    expect(commands.caption(CommandIDs.build, local)).toBe(
      'Not connected to the server extension'
    );
  });

  it("enable actions from the server's flags, not the environment's state", async () => {
    await model.connect();
    // Building and never built, yet the server allows these: enabled.
    for (const id of [
      CommandIDs.build,
      CommandIDs.edit,
      CommandIDs.remove,
      CommandIDs.copy
    ]) {
      expect(commands.isEnabled(id, local)).toBe(true);
    }
    // Denied by the server: disabled, and its reason is the tooltip.
    expect(commands.isEnabled(CommandIDs.cancel, local)).toBe(false);
    expect(commands.caption(CommandIDs.cancel, local)).toBe(
      'No build is running'
    );
    expect(commands.isEnabled(CommandIDs.toggleKernel, local)).toBe(true);
    expect(commands.label(CommandIDs.toggleKernel, local)).toBe(
      'Deactivate kernel'
    );
  });

  it("show the server's reason for a read-only store", async () => {
    await model.connect();
    for (const id of [CommandIDs.build, CommandIDs.edit, CommandIDs.remove]) {
      expect(commands.isEnabled(id, shared)).toBe(false);
      expect(commands.caption(id, shared)).toBe(
        'The shared store is read-only for you'
      );
    }
    expect(
      commands.isEnabled(CommandIDs.revert, { ...shared, version: 1 })
    ).toBe(false);
    expect(commands.isEnabled(CommandIDs.copy, shared)).toBe(true);
    expect(commands.label(CommandIDs.copy, shared)).toBe('Copy to local');
    expect(commands.isEnabled(CommandIDs.exportEnv, shared)).toBe(true);
  });

  it('say when no environment is selected', async () => {
    await model.connect();
    const missing = { scope: 'local', name: 'nope' };
    expect(commands.isEnabled(CommandIDs.build, missing)).toBe(false);
    expect(commands.caption(CommandIDs.build, missing)).toBe(
      'Select an environment first'
    );
  });

  it('cancel with POST .../cancel', async () => {
    server.on('GET', 'environments', ({ query }) => ({
      json: {
        environments:
          query.get('scope') === 'shared'
            ? []
            : [
                env({
                  status: 'building',
                  latest_build: build({ status: 'running' }),
                  actions: actions({ adopt: 'Already managed' })
                })
              ]
      }
    }));
    await model.connect();
    expect(commands.isEnabled(CommandIDs.cancel, local)).toBe(true);
    await commands.execute(CommandIDs.cancel, local);
    expect(
      server.calls
        .filter(c => c.method !== 'GET')
        .map(c => `${c.method} ${c.path}`)
    ).toEqual(['POST environments/local/demo/builds/1/cancel']);
  });
});
