import {
  MainAreaWidget,
  Notification,
  ReactWidget
} from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import { envManagerIcon } from '../icons';
import type { EnvManagerModel } from '../model';
import { followBuild } from '../notifications';
import { confirmDraft } from '../components/PackagesDraft';
import { PackagesView } from '../components/PackagesView';
import type { IEnvRef } from '../tokens';
import { draftSpec, ISpecEdit } from './PackagesLogic';
import { PackagesModel } from './PackagesModel';

/**
 * The content of a Packages tab: the view of one environment's packages,
 * redrawn when its state or the environment changes, reloaded when a build
 * of the environment ends.
 */
export class PackagesWidget extends ReactWidget {
  constructor(options: PackagesWidget.IOptions) {
    super();
    this.addClass('jp-EnvManager-PackagesWidget');
    this.trans = options.trans;
    this.pm = new PackagesModel({ model: options.model, ref: options.ref });
    this._openLog = options.openLog;
    this.pm.changed.connect(this.update, this);
    options.model.changed.connect(this.update, this);
  }

  readonly pm: PackagesModel;
  readonly trans: TranslationBundle;

  get ref(): IEnvRef {
    return this.pm.ref;
  }

  /**
   * Add, update or remove a package through the spec: show the draft, and
   * on "Build" ask the server to build it (the install or uninstall route).
   */
  async edit(edit: ISpecEdit, title: string): Promise<void> {
    const { trans, pm } = this;
    const env = await pm.model.reload(pm.ref).catch(() => pm.env);
    if (!env) {
      return;
    }
    const { before, after } = draftSpec(env.spec, edit);
    const confirmed = await confirmDraft({
      title,
      before,
      after,
      kind: edit.kind,
      trans
    });
    if (!confirmed) {
      return;
    }
    try {
      const { build } = await pm.model.api.install(pm.ref, [edit.line], {
        pip: edit.kind === 'pip',
        remove: edit.op === 'remove'
      });
      void pm.model.reload(pm.ref);
      followBuild({
        model: pm.model,
        trans,
        ref: pm.ref,
        build,
        what: title,
        openLog: this._openLog
      });
    } catch (error) {
      Notification.error(
        trans.__('%1: %2', title, (error as Error).message ?? String(error)),
        { autoClose: false }
      );
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.pm.model.changed.disconnect(this.update, this);
    this.pm.dispose();
    super.dispose();
  }

  protected render(): JSX.Element {
    return (
      <PackagesView
        pm={this.pm}
        trans={this.trans}
        onEdit={(edit, title) => void this.edit(edit, title)}
      />
    );
  }

  private _openLog: (ref: IEnvRef, version: number) => void;
}

export namespace PackagesWidget {
  export interface IOptions {
    model: EnvManagerModel;
    ref: IEnvRef;
    trans: TranslationBundle;
    openLog: (ref: IEnvRef, version: number) => void;
  }

  /**
   * A main-area tab holding the Packages view of `ref`; it loads at once.
   */
  export function createTab(options: IOptions): MainAreaWidget<PackagesWidget> {
    const content = new PackagesWidget(options);
    const widget = new MainAreaWidget({ content });
    const { ref, trans } = options;
    widget.id = `jp-EnvManager-packages-${ref.scope}-${ref.name}`;
    widget.title.label = trans.__('Packages: %1', ref.name);
    widget.title.caption = trans.__('Packages of %1/%2', ref.scope, ref.name);
    widget.title.icon = envManagerIcon;
    widget.title.closable = true;
    void content.pm.load();
    return widget;
  }
}
