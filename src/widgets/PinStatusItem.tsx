import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { Menu } from '@lumino/widgets';
import * as React from 'react';
import { envManagerIcon } from '../icons';
import type { IPinStatus } from '../pins';
import { CommandIDs } from '../tokens';
import type { IEnvManager } from '../tokens';
import type { PinController } from './PinController';

/**
 * The status bar item of the current notebook's environment: "mv v5" on an
 * environment's kernel, "mv v3 (pinned)" or "mv v3 → v5 available" when
 * pinned. Clicking it opens a menu: pin to the version in use, unpin, show
 * the environment in the panel.
 */
export class PinStatusItem extends ReactWidget {
  constructor(options: PinStatusItem.IOptions) {
    super();
    this._tracker = options.tracker;
    this._kernelspecs = options.kernelspecs;
    this._manager = options.manager;
    this._controller = options.controller;
    this._commands = options.commands;
    this._trans = options.trans;
    this.addClass('jp-EnvManager-StatusItem');
    this._tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._kernelspecs.specsChanged.connect(this._refresh, this);
    this._manager.changed.connect(this._refresh, this);
    this._controller.changed.connect(this._refresh, this);
    this._onCurrentChanged();
  }

  /**
   * What the item shows (null: hidden).
   */
  get status(): IPinStatus | null {
    return this._status;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._watch(null);
    this._tracker.currentChanged.disconnect(this._onCurrentChanged, this);
    this._kernelspecs.specsChanged.disconnect(this._refresh, this);
    this._manager.changed.disconnect(this._refresh, this);
    this._controller.changed.disconnect(this._refresh, this);
    super.dispose();
  }

  /**
   * The menu of the item, for the current notebook.
   */
  menu(): Menu {
    const menu = new Menu({ commands: this._commands });
    menu.addClass('jp-EnvManager-PinMenu');
    const status = this._status;
    if (status) {
      if (!status.pinned && status.version !== null) {
        menu.addItem({
          command: CommandIDs.pinNotebook,
          args: { version: status.version }
        });
      }
      if (status.pinned && status.newer !== null) {
        menu.addItem({
          command: CommandIDs.pinNotebook,
          args: { version: status.newer }
        });
      }
      if (status.pinned) {
        menu.addItem({ command: CommandIDs.unpinNotebook });
      }
      menu.addItem({ type: 'separator' });
      menu.addItem({
        command: CommandIDs.openPanel,
        args: { scope: status.scope, name: status.name }
      });
    }
    return menu;
  }

  protected render(): JSX.Element | null {
    const status = this._status;
    if (!status) {
      return null;
    }
    const classes = [
      'jp-EnvManager-StatusButton',
      status.pinned ? 'jp-mod-pinned' : '',
      status.newer !== null ? 'jp-mod-newer' : ''
    ].join(' ');
    return (
      <button
        type="button"
        className={classes}
        title={status.title}
        aria-label={this._trans.__('Notebook environment: %1', status.label)}
        aria-haspopup="menu"
        data-scope={status.scope}
        data-name={status.name}
        onClick={event => this._openMenu(event.currentTarget)}
      >
        <envManagerIcon.react tag="span" elementSize="small" />
        <span>{status.label}</span>
      </button>
    );
  }

  private _openMenu(anchor: HTMLElement): void {
    const menu = this.menu();
    menu.aboutToClose.connect(() => {
      // Dispose after the triggered command ran.
      requestAnimationFrame(() => menu.dispose());
    });
    const rect = anchor.getBoundingClientRect();
    menu.open(rect.left, rect.top);
  }

  private _onCurrentChanged(): void {
    this._watch(this._tracker.currentWidget);
    this._refresh();
  }

  private _watch(panel: NotebookPanel | null): void {
    const previous = this._panel;
    previous?.sessionContext.kernelChanged.disconnect(this._refresh, this);
    previous?.sessionContext.sessionChanged.disconnect(this._refresh, this);
    previous?.model?.metadataChanged.disconnect(this._refresh, this);
    this._panel = panel;
    panel?.sessionContext.kernelChanged.connect(this._refresh, this);
    panel?.sessionContext.sessionChanged.connect(this._refresh, this);
    panel?.model?.metadataChanged.connect(this._refresh, this);
  }

  private _refresh(): void {
    this._status = this._controller.status(this._panel);
    this.setHidden(this._status === null);
    this.update();
  }

  private _tracker: INotebookTracker;
  private _kernelspecs: KernelSpec.IManager;
  private _manager: IEnvManager;
  private _controller: PinController;
  private _commands: CommandRegistry;
  private _trans: TranslationBundle;
  private _panel: NotebookPanel | null = null;
  private _status: IPinStatus | null = null;
}

export namespace PinStatusItem {
  export interface IOptions {
    tracker: INotebookTracker;
    kernelspecs: KernelSpec.IManager;
    manager: IEnvManager;
    controller: PinController;
    commands: CommandRegistry;
    trans: TranslationBundle;
  }
}
