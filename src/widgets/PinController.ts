import {
  ICommandPalette,
  ISessionContext,
  Notification
} from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import { gcCount, showCleanUp, showPinProblem } from '../components/PinDialogs';
import { kernelEnvironment } from '../kernelspec';
import type { EnvManagerAPI } from '../api';
import {
  IKernelSwitcher,
  IPinStatus,
  isPin,
  parseKernelName,
  PIN_METADATA_KEY,
  PinBundle,
  pinStatus,
  readPin,
  removePin,
  switchKernel,
  unpinnedKernelName,
  writePin
} from '../pins';
import { CommandIDs } from '../tokens';
import type { IEnvManager, IEnvRef, IPinMetadata, IPinResult } from '../tokens';

/**
 * How long a pinned notebook's kernel is held at most while its session
 * initializes (a bound, should the session never get ready).
 */
const SESSION_READY_MS = 60_000;

/**
 * A promise settled when `promise` settles or after `ms`, whichever is first.
 */
function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}

/**
 * Pins of the open notebooks: checks a pinned notebook when it opens (before
 * its kernel starts), pins and unpins, and applies what `%envmgr pin` shows.
 */
export class PinController {
  constructor(options: PinController.IOptions) {
    this._tracker = options.tracker;
    this._kernelspecs = options.kernelspecs;
    this._manager = options.manager;
    this._api = options.api;
    this._trans = options.trans;
    this._tracker.widgetAdded.connect((_, panel) => this.watch(panel));
    this._tracker.forEach(panel => this.watch(panel));
  }

  /**
   * Follow a notebook panel from its creation: call it as early as possible
   * (the notebook widget factory's `widgetCreated`), before the notebook's
   * content is loaded; the tracker's `widgetAdded` comes too late to be sure.
   * Each document is checked once, whatever the number of its views.
   */
  watch(panel: NotebookPanel): void {
    if (this._contexts.has(panel.context)) {
      return;
    }
    this._contexts.add(panel.context);
    void panel.context.ready.then(() => this._onOpened(panel));
  }

  /**
   * Emitted when a notebook's pin was applied, removed or checked.
   */
  get changed(): ISignal<this, NotebookPanel> {
    return this._changed;
  }

  /**
   * The status bar's words for a notebook (null: not one of ours).
   */
  status(panel: NotebookPanel | null): IPinStatus | null {
    if (!panel || !panel.model) {
      return null;
    }
    const pin = this.pinOf(panel);
    const context = panel.sessionContext;
    const kernelName =
      context.session?.kernel?.name ?? context.kernelPreference.name;
    const kernel = kernelEnvironment(kernelName, this._kernelspecs.specs);
    const ref = pin ?? kernel;
    const env = ref ? this._manager.get(ref) : undefined;
    // A pinned kernel chosen by hand runs its own version, not the one in use.
    const pinnedKernel = parseKernelName(kernelName)?.pinned ?? null;
    const inUse =
      !pin && pinnedKernel !== null ? pinnedKernel : (env?.version ?? null);
    return pinStatus({ pin, kernel, inUse }, this._trans);
  }

  /**
   * A notebook's pin (null: none, or malformed).
   */
  pinOf(panel: NotebookPanel): IPinMetadata | null {
    const pin = readPin(panel.model?.getMetadata(PIN_METADATA_KEY));
    return isPin(pin) ? pin : null;
  }

  /**
   * Pin a notebook to a version of its environment (the one in use by
   * default) and run it on that version's kernel.
   */
  async pin(
    panel: NotebookPanel,
    ref: IEnvRef,
    version?: number
  ): Promise<IPinResult> {
    const request = version === undefined ? { ...ref } : { ...ref, version };
    const result = await this._api.pin(request);
    await this._apply(panel, { kind: 'pin', result });
    return result;
  }

  /**
   * Remove a notebook's pin: it runs on its environment's version in use.
   */
  async unpin(panel: NotebookPanel): Promise<void> {
    const pin = this.pinOf(panel);
    if (!pin) {
      return;
    }
    await this._apply(panel, {
      kind: 'unpin',
      kernel_name: unpinnedKernelName(pin.scope, pin.name)
    });
  }

  /**
   * Apply what `%envmgr pin` / `%envmgr unpin` displayed to its notebook.
   */
  applyBundle(panel: NotebookPanel, bundle: PinBundle): Promise<void> {
    return this._apply(panel, bundle);
  }

  private async _apply(panel: NotebookPanel, bundle: PinBundle): Promise<void> {
    const model = panel.model;
    if (!model) {
      return;
    }
    const refresh = () => this._kernelspecs.refreshSpecs();
    const session = panel.sessionContext as unknown as IKernelSwitcher;
    if (bundle.kind === 'pin') {
      writePin(model, bundle.result);
      this._changed.emit(panel);
      await switchKernel(session, bundle.result.kernel_name, refresh);
      // The panel shows which versions notebooks pin.
      void this._manager
        .refresh()
        .catch(error => console.warn('env-manager: reload failed', error));
    } else {
      const pin = this.pinOf(panel);
      const env = pin ? this._manager.get(pin) : undefined;
      removePin(model, bundle.kernel_name, env?.kernel?.display_name);
      this._changed.emit(panel);
      await refresh();
      if (!this._kernelspecs.specs?.kernelspecs[bundle.kernel_name]) {
        throw new Error(
          this._trans.__(
            'The notebook is unpinned, but its environment has no active kernel (%1): activate it in the Environments panel, or choose another kernel.',
            bundle.kernel_name
          )
        );
      }
      await switchKernel(session, bundle.kernel_name, refresh);
    }
    this._changed.emit(panel);
  }

  /**
   * A notebook opened. Runs synchronously up to the check's request, right
   * when its content is ready: the session has not looked at its kernel
   * preference yet, so a pinned notebook's kernel does not start before
   * the server made sure the pinned kernel exists (else Jupyter could fall
   * back to any other Python kernel).
   */
  private async _onOpened(panel: NotebookPanel): Promise<void> {
    if (panel.isDisposed || !panel.model) {
      return;
    }
    const raw = readPin(panel.model.getMetadata(PIN_METADATA_KEY));
    if (raw === null) {
      return;
    }
    const context: ISessionContext = panel.sessionContext;
    const preference = context.kernelPreference;
    context.kernelPreference = { ...preference, shouldStart: false };
    // The preference is restored once the session has read it (it then
    // connected to the notebook's running session, if any, or started nothing).
    const initialized = bounded(context.ready, SESSION_READY_MS).then(() => {
      context.kernelPreference = {
        ...context.kernelPreference,
        shouldStart: preference.shouldStart
      };
    });
    let result: IPinResult;
    try {
      if (!isPin(raw)) {
        throw new Error(raw.error);
      }
      result = await this._api.checkPin(raw);
    } catch (error) {
      await initialized;
      if (!panel.isDisposed) {
        await this._onCheckFailed(panel, isPin(raw) ? raw : null, error);
      }
      return;
    }
    await initialized;
    if (panel.isDisposed) {
      return;
    }
    // The server may have rewritten the kernel's name or display name.
    if (
      (panel.model.getMetadata('kernelspec') as { name?: string } | undefined)
        ?.name !== result.kernel_name
    ) {
      writePin(panel.model, result);
    }
    this._changed.emit(panel);
    try {
      await switchKernel(
        context as unknown as IKernelSwitcher,
        result.kernel_name,
        () => this._kernelspecs.refreshSpecs()
      );
    } catch (error) {
      Notification.error(
        this._trans.__(
          'Cannot start the pinned kernel %1: %2',
          result.kernel_name,
          (error as Error).message ?? String(error)
        ),
        { autoClose: false }
      );
    }
  }

  private async _onCheckFailed(
    panel: NotebookPanel,
    pin: IPinMetadata | null,
    error: unknown
  ): Promise<void> {
    this._changed.emit(panel);
    const message = (error as Error).message ?? String(error);
    const choice = await showPinProblem({
      trans: this._trans,
      notebook: panel.context.localPath,
      message,
      // Also when the environment is not listed (yet): unpinning then says
      // whether its kernel exists.
      canUnpin: pin !== null
    });
    if (choice === 'unpin' && pin) {
      try {
        await this.unpin(panel);
      } catch (reason) {
        Notification.error((reason as Error).message ?? String(reason), {
          autoClose: false
        });
      }
    }
  }

  private _tracker: INotebookTracker;
  private _kernelspecs: KernelSpec.IManager;
  private _manager: IEnvManager;
  private _api: EnvManagerAPI;
  private _trans: TranslationBundle;
  private _changed = new Signal<this, NotebookPanel>(this);
  private _contexts = new WeakSet<object>();
}

export namespace PinController {
  export interface IOptions {
    tracker: INotebookTracker;
    kernelspecs: KernelSpec.IManager;
    /**
     * The environments (their versions in use and kernels).
     */
    manager: IEnvManager;
    api: EnvManagerAPI;
    trans: TranslationBundle;
  }
}

/**
 * The commands of pins: pin and unpin the current notebook, clean up the
 * stores' old version directories.
 */
export function addPinCommands(
  commands: CommandRegistry,
  options: {
    controller: PinController;
    tracker: INotebookTracker;
    trans: TranslationBundle;
    palette: ICommandPalette | null;
  }
): void {
  const { controller, tracker, trans, palette } = options;
  const category = trans.__('Environments');
  const current = () => {
    const panel = tracker.currentWidget;
    const status = controller.status(panel);
    return panel && status ? { panel, status } : null;
  };
  const versionArg = (args: ReadonlyPartialJSONObject): number | undefined =>
    typeof args.version === 'number' ? args.version : undefined;
  const fail = (what: string) => (error: unknown) => {
    Notification.error(
      trans.__('%1: %2', what, (error as Error).message ?? String(error)),
      { autoClose: false }
    );
  };

  commands.addCommand(CommandIDs.pinNotebook, {
    label: args => {
      const status = current()?.status;
      const version = versionArg(args) ?? status?.newer ?? status?.version;
      return typeof version === 'number'
        ? trans.__('Pin to v%1', version)
        : trans.__('Pin Notebook to Its Environment Version');
    },
    caption: trans.__(
      'Run this notebook on this version of its environment, also after rebuilds and on other servers (restarts its kernel)'
    ),
    isEnabled: () => current() !== null,
    execute: async args => {
      const now = current();
      if (!now) {
        return;
      }
      const { panel, status } = now;
      const version = versionArg(args) ?? status.newer ?? undefined;
      const ref = { scope: status.scope, name: status.name };
      await controller
        .pin(panel, ref, version)
        .then(result => {
          const message = result.materialized
            ? trans.__(
                '%1 is pinned to %2 v%3 (its directory was made again from its lock)',
                panel.context.localPath,
                ref.name,
                result.version
              )
            : trans.__(
                '%1 is pinned to %2 v%3',
                panel.context.localPath,
                ref.name,
                result.version
              );
          Notification.success(message, { autoClose: 5000 });
        })
        .catch(fail(trans.__('Cannot pin %1', panel.context.localPath)));
    }
  });

  commands.addCommand(CommandIDs.unpinNotebook, {
    label: trans.__('Unpin'),
    caption: trans.__(
      "Run this notebook on its environment's version in use (restarts its kernel)"
    ),
    isEnabled: () => {
      const panel = tracker.currentWidget;
      return !!panel && controller.pinOf(panel) !== null;
    },
    execute: async () => {
      const panel = tracker.currentWidget;
      if (!panel) {
        return;
      }
      await controller
        .unpin(panel)
        .catch(fail(trans.__('Cannot unpin %1', panel.context.localPath)));
    }
  });

  for (const command of [CommandIDs.pinNotebook, CommandIDs.unpinNotebook]) {
    palette?.addItem({ command, category });
  }
}

/**
 * The command removing the old version directories of the stores, after a
 * dry run shown in a dialog.
 */
export function addCleanUpCommand(
  commands: CommandRegistry,
  options: {
    manager: Pick<IEnvManager, 'info' | 'refresh'>;
    api: EnvManagerAPI;
    trans: TranslationBundle;
    palette: ICommandPalette | null;
  }
): void {
  const { manager, api, trans, palette } = options;
  commands.addCommand(CommandIDs.cleanUp, {
    label: trans.__('Clean Up Old Versions…'),
    caption: trans.__(
      'Remove the directories of old versions no notebook or kernel uses (each can be made again from its lock)'
    ),
    isEnabled: () => manager.info !== null,
    execute: async () => {
      try {
        const dryRun = await api.gc(true);
        if (!(await showCleanUp({ trans, dryRun }))) {
          return;
        }
        const done = await api.gc(false);
        const count = gcCount(done.removed);
        Notification.success(
          trans._n(
            'Removed %1 old version directory',
            'Removed %1 old version directories',
            count
          ),
          { autoClose: 5000 }
        );
        await manager.refresh();
      } catch (error) {
        Notification.error(
          trans.__('Clean up: %1', (error as Error).message ?? String(error)),
          { autoClose: false }
        );
      }
    }
  });

  palette?.addItem({
    command: CommandIDs.cleanUp,
    category: trans.__('Environments')
  });
}
