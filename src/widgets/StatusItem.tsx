import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';
import { envManagerIcon } from '../icons';
import { kernelEnvironment } from '../kernelspec';
import type { IKernelEnvMetadata } from '../tokens';

/**
 * The status bar item naming the environment of the current notebook's
 * kernel; clicking it opens the panel on that environment.
 */
export class EnvStatusItem extends ReactWidget {
  constructor(options: EnvStatusItem.IOptions) {
    super();
    this._tracker = options.tracker;
    this._kernelspecs = options.kernelspecs;
    this._trans = options.trans;
    this._onOpen = options.onOpen;
    this.addClass('jp-EnvManager-StatusItem');
    this._tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._kernelspecs.specsChanged.connect(this._refresh, this);
    this._onCurrentChanged();
  }

  /**
   * The environment of the current notebook's kernel, if any.
   */
  get environment(): IKernelEnvMetadata | null {
    return this._env;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._watch(null);
    this._tracker.currentChanged.disconnect(this._onCurrentChanged, this);
    this._kernelspecs.specsChanged.disconnect(this._refresh, this);
    super.dispose();
  }

  protected render(): JSX.Element | null {
    const env = this._env;
    if (!env) {
      return null;
    }
    const label =
      env.version !== null
        ? this._trans.__('%1 (%2) v%3', env.name, env.scope, env.version)
        : this._trans.__('%1 (%2)', env.name, env.scope);
    return (
      <button
        type="button"
        className="jp-EnvManager-StatusButton"
        title={this._trans.__(
          'Kernel environment: %1. Click to show it.',
          label
        )}
        aria-label={this._trans.__('Kernel environment: %1', label)}
        onClick={() => this._onOpen(env)}
      >
        <envManagerIcon.react tag="span" elementSize="small" />
        <span>{label}</span>
      </button>
    );
  }

  private _onCurrentChanged(): void {
    this._watch(this._tracker.currentWidget);
    this._refresh();
  }

  private _watch(panel: NotebookPanel | null): void {
    const previous = this._panel?.sessionContext;
    previous?.kernelChanged.disconnect(this._refresh, this);
    previous?.sessionChanged.disconnect(this._refresh, this);
    this._panel = panel;
    panel?.sessionContext.kernelChanged.connect(this._refresh, this);
    panel?.sessionContext.sessionChanged.connect(this._refresh, this);
  }

  private _refresh(): void {
    const context = this._panel?.sessionContext;
    const kernelName =
      context?.session?.kernel?.name ?? context?.kernelPreference.name;
    this._env = kernelEnvironment(kernelName, this._kernelspecs.specs);
    this.setHidden(this._env === null);
    this.update();
  }

  private _tracker: INotebookTracker;
  private _kernelspecs: KernelSpec.IManager;
  private _trans: TranslationBundle;
  private _onOpen: (env: IKernelEnvMetadata) => void;
  private _panel: NotebookPanel | null = null;
  private _env: IKernelEnvMetadata | null = null;
}

export namespace EnvStatusItem {
  export interface IOptions {
    tracker: INotebookTracker;
    kernelspecs: KernelSpec.IManager;
    trans: TranslationBundle;
    onOpen: (env: IKernelEnvMetadata) => void;
  }
}
