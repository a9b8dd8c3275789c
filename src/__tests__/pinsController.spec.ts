/**
 * The pin controller against a MOCK of the REST API (jest cannot start the
 * server) and a stand-in notebook panel: a real notebook model, a session
 * context reduced to what the controller uses. Galata (ui-tests/pins.spec.ts)
 * runs the same flows in a real Lab against the real server.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import { NotebookModel } from '@jupyterlab/notebook';
import type { KernelSpec } from '@jupyterlab/services';
import { Dialog } from '@jupyterlab/apputils';
import { dangerDialog, dismissDialog } from '@jupyterlab/testing';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { PromiseDelegate } from '@lumino/coreutils';
import { Signal } from '@lumino/signaling';
import { EnvManagerAPI } from '../api';
import type { IEnv, IEnvManager, IEnvRef } from '../tokens';
import { CommandIDs } from '../tokens';
import { addCleanUpCommand, PinController } from '../widgets/PinController';
import { env, until } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');
const SHA = 'b'.repeat(64);
const PIN = { scope: 'local', name: 'mv', version: 1, lock_sha256: SHA };
const CHECKED = {
  ...PIN,
  kernel_name: 'envmgr-mv.v1',
  display_name: 'mv v1',
  materialized: true
};

/**
 * What the controller uses of a session context.
 */
class FakeSessionContext {
  kernelPreference: { name?: string; shouldStart?: boolean } = {};
  session: { kernel: { name: string; status: string } } | null = null;
  changes: string[] = [];
  kernelChanged = new Signal<this, unknown>(this);
  /**
   * Resolved when the session has initialized (read its kernel preference).
   */
  initialized = new PromiseDelegate<void>();
  get ready(): Promise<void> {
    return this.initialized.promise;
  }

  async changeKernel(options: { name: string }): Promise<void> {
    this.changes.push(options.name);
    this.session = { kernel: { name: options.name, status: 'idle' } };
  }
}

function fakePanel(metadata: Record<string, unknown>) {
  const model = new NotebookModel();
  for (const [key, value] of Object.entries(metadata)) {
    model.setMetadata(key, value);
  }
  const ready = new PromiseDelegate<void>();
  const sessionContext = new FakeSessionContext();
  const panel = {
    model,
    sessionContext,
    context: { ready: ready.promise, localPath: 'work/analysis.ipynb' },
    isDisposed: false
  };
  sessionContext.initialized.resolve();
  return {
    panel: panel as unknown as NotebookPanel,
    model,
    sessionContext,
    ready
  };
}

afterEach(() => {
  // A failed test must not leave its dialog in the queue of the next ones.
  Dialog.flush();
});

describe('PinController', () => {
  let server: MockEnvServer;
  let controller: PinController;
  let specs: Record<string, unknown>;
  let refreshed: number;
  let envs: IEnv[];

  beforeEach(() => {
    server = new MockEnvServer();
    specs = { 'envmgr-mv': { name: 'envmgr-mv' } };
    refreshed = 0;
    envs = [env({ name: 'mv', version: 3 })];
    const kernelspecs = {
      get specs() {
        return { default: 'python3', kernelspecs: specs };
      },
      specsChanged: new Signal({}),
      refreshSpecs: async () => {
        refreshed++;
      }
    } as unknown as KernelSpec.IManager;
    const manager = {
      info: null,
      changed: new Signal({}),
      get: (ref: IEnvRef) =>
        envs.find(e => e.scope === ref.scope && e.name === ref.name),
      refresh: async () => undefined
    } as unknown as IEnvManager;
    const tracker = {
      widgetAdded: new Signal({}),
      forEach: () => undefined
    };
    controller = new PinController({
      tracker: tracker as any,
      kernelspecs,
      manager,
      api: new EnvManagerAPI(server.settings),
      trans
    });
  });

  it('holds a pinned notebook kernel until the server checked its pin', async () => {
    const answer = new PromiseDelegate<void>();
    server.on('POST', 'pins/check', async () => {
      await answer.promise;
      return { json: CHECKED };
    });
    const { panel, model, sessionContext, ready } = fakePanel({
      envmgr: PIN,
      kernelspec: {
        name: 'envmgr-mv.v1',
        display_name: 'mv v1',
        language: 'python'
      }
    });
    controller.watch(panel);
    ready.resolve();
    // Right when the content is ready, before the session reads it.
    await ready.promise;
    await Promise.resolve();
    expect(sessionContext.kernelPreference.shouldStart).toBe(false);
    await until(() => server.calls.length === 1);
    expect(server.calls[0].body).toEqual(PIN);
    expect(sessionContext.changes).toEqual([]);

    answer.resolve();
    await until(() => sessionContext.changes.length === 1);
    expect(sessionContext.changes).toEqual(['envmgr-mv.v1']);
    expect(refreshed).toBeGreaterThan(0);
    expect(sessionContext.kernelPreference.shouldStart).toBeUndefined();
    expect(model.getMetadata('envmgr')).toEqual(PIN);
    expect(controller.status(panel)!.label).toBe('mv v1 → v3 available');
  });

  it('holds the kernel until the session has read the preference, also when the check fails fast', async () => {
    server.on('POST', 'pins/check', () => ({
      status: 404,
      json: { message: 'no environment mv any more' }
    }));
    const { panel, sessionContext, ready } = fakePanel({ envmgr: PIN });
    sessionContext.initialized = new PromiseDelegate<void>();
    controller.watch(panel);
    ready.resolve();
    await until(() => server.calls.length === 1);
    // The answer came; the session has not initialized yet.
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(sessionContext.kernelPreference.shouldStart).toBe(false);
    expect(
      document.querySelector('.jp-EnvManager-PinProblemMessage')
    ).toBeNull();
    sessionContext.initialized.resolve();
    await until(
      () => !!document.querySelector('.jp-EnvManager-PinProblemMessage')
    );
    expect(sessionContext.kernelPreference.shouldStart).toBeUndefined();
    await dismissDialog();
    expect(sessionContext.changes).toEqual([]);
  });

  it('shows why a pin cannot be honoured and keeps it', async () => {
    const message = `The lock of mv version 1 is ${'c'.repeat(64)}, not ${SHA} as pinned`;
    server.on('POST', 'pins/check', () => ({ status: 409, json: { message } }));
    const { panel, model, sessionContext, ready } = fakePanel({ envmgr: PIN });
    controller.watch(panel);
    ready.resolve();
    await until(
      () => !!document.querySelector('.jp-EnvManager-PinProblemMessage')
    );
    expect(
      document.querySelector('.jp-EnvManager-PinProblemMessage')!.textContent
    ).toBe(message);
    await dismissDialog();
    await until(
      () => sessionContext.kernelPreference.shouldStart === undefined
    );
    // No other kernel: the pin stays, no kernel was started.
    expect(sessionContext.changes).toEqual([]);
    expect(model.getMetadata('envmgr')).toEqual(PIN);
  });

  it('unpins from the problem dialog', async () => {
    server.on('POST', 'pins/check', () => ({
      status: 409,
      json: { message: 'alpha 1.0 is no longer in the channel' }
    }));
    const { panel, model, sessionContext, ready } = fakePanel({
      envmgr: PIN,
      kernelspec: {
        name: 'envmgr-mv.v1',
        display_name: 'mv v1',
        language: 'python'
      }
    });
    controller.watch(panel);
    ready.resolve();
    await until(
      () => !!document.querySelector('.jp-EnvManager-PinProblemMessage')
    );
    await dangerDialog();
    await until(() => sessionContext.changes.length === 1);
    expect(sessionContext.changes).toEqual(['envmgr-mv']);
    expect(model.getMetadata('envmgr')).toBeUndefined();
    expect((model.getMetadata('kernelspec') as any).name).toBe('envmgr-mv');
    expect(controller.status(panel)!.label).toBe('mv v3');
  });

  it('names a malformed pin without asking the server', async () => {
    const { panel, ready } = fakePanel({ envmgr: { ...PIN, version: 'one' } });
    controller.watch(panel);
    ready.resolve();
    await until(
      () => !!document.querySelector('.jp-EnvManager-PinProblemMessage')
    );
    expect(
      document.querySelector('.jp-EnvManager-PinProblemMessage')!.textContent
    ).toBe('metadata.envmgr.version is not a version number');
    await dismissDialog();
    expect(server.calls).toEqual([]);
  });

  it('leaves an unpinned notebook alone', async () => {
    const { panel, sessionContext, ready } = fakePanel({
      kernelspec: { name: 'envmgr-mv', display_name: 'mv', language: 'python' }
    });
    controller.watch(panel);
    ready.resolve();
    await ready.promise;
    await Promise.resolve();
    expect(sessionContext.kernelPreference.shouldStart).toBeUndefined();
    expect(server.calls).toEqual([]);
  });

  it('pins a notebook and runs it on the pinned kernel', async () => {
    server.on('POST', 'pins', () => ({
      json: { ...CHECKED, version: 3, kernel_name: 'envmgr-mv.v3' }
    }));
    const { panel, model, sessionContext } = fakePanel({});
    sessionContext.session = { kernel: { name: 'envmgr-mv', status: 'idle' } };
    expect(controller.status(panel)!.label).toBe('mv v3');
    await controller.pin(panel, { scope: 'local', name: 'mv' }, 3);
    expect(server.calls[0].body).toEqual({
      scope: 'local',
      name: 'mv',
      version: 3
    });
    expect(model.getMetadata('envmgr')).toEqual({ ...PIN, version: 3 });
    expect(sessionContext.changes).toEqual(['envmgr-mv.v3']);
    expect(controller.status(panel)!.label).toBe('mv v3 (pinned)');
  });

  it('gives the version of a pinned kernel chosen by hand', () => {
    const { panel, sessionContext } = fakePanel({});
    sessionContext.session = {
      kernel: { name: 'envmgr-mv.v1', status: 'idle' }
    };
    expect(controller.status(panel)!.label).toBe('mv v1');
    sessionContext.session = { kernel: { name: 'envmgr-mv', status: 'idle' } };
    expect(controller.status(panel)!.label).toBe('mv v3');
  });

  it('says when an unpinned environment has no kernel to go back to', async () => {
    delete specs['envmgr-mv'];
    const { panel, model, sessionContext } = fakePanel({ envmgr: PIN });
    await expect(controller.unpin(panel)).rejects.toThrow(
      'no active kernel (envmgr-mv)'
    );
    expect(model.getMetadata('envmgr')).toBeUndefined();
    expect(sessionContext.changes).toEqual([]);
  });
});

describe('clean up old versions', () => {
  it('shows the dry run, then removes on confirmation', async () => {
    const server = new MockEnvServer().on('POST', 'gc', ({ body }) => ({
      json: {
        removed: { 'local/mv': ['v1-0123abcd', 'v2-4567ef01'] },
        kept_for_kernels: (body as any).dry_run
          ? { 'shared/team': ['v4-89ab'] }
          : {}
      }
    }));
    const commands = new CommandRegistry();
    let refreshed = 0;
    addCleanUpCommand(commands, {
      manager: {
        info: {} as any,
        refresh: async () => {
          refreshed++;
        }
      },
      api: new EnvManagerAPI(server.settings),
      trans,
      palette: null
    });
    const done = commands.execute(CommandIDs.cleanUp);
    await until(() => !!document.querySelector('.jp-EnvManager-CleanUp'));
    const dialog = document.querySelector('.jp-EnvManager-CleanUp')!;
    expect(
      [
        ...dialog.querySelectorAll('.jp-mod-removed .jp-EnvManager-GcVersion')
      ].map(n => n.textContent)
    ).toEqual(['v1', 'v2']);
    expect(dialog.querySelector('.jp-mod-kept')!.textContent).toContain(
      'shared/team'
    );
    expect(server.calls.map(c => c.body)).toEqual([{ dry_run: true }]);
    await dangerDialog();
    await done;
    expect(server.calls.map(c => c.body)).toEqual([
      { dry_run: true },
      { dry_run: false }
    ]);
    expect(refreshed).toBe(1);
  });

  it('removes nothing when cancelled', async () => {
    const server = new MockEnvServer().on('POST', 'gc', () => ({
      json: { removed: { 'local/mv': ['v1-0123abcd'] }, kept_for_kernels: {} }
    }));
    const commands = new CommandRegistry();
    addCleanUpCommand(commands, {
      manager: { info: {} as any, refresh: async () => undefined },
      api: new EnvManagerAPI(server.settings),
      trans,
      palette: null
    });
    const done = commands.execute(CommandIDs.cleanUp);
    await until(() => !!document.querySelector('.jp-EnvManager-CleanUp'));
    await dismissDialog();
    await done;
    expect(server.calls.map(c => c.body)).toEqual([{ dry_run: true }]);
  });
});
