import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import * as React from 'react';
import { EnvList } from '../components/EnvList';
import { envManagerIcon } from '../icons';
import type { EnvManagerModel } from '../model';

/**
 * The left sidebar panel listing the environments of both stores.
 */
export class EnvPanel extends ReactWidget {
  constructor(options: EnvPanel.IOptions) {
    super();
    this.model = options.model;
    this._commands = options.commands;
    this._trans = options.trans;
    this.id = EnvPanel.ID;
    this.addClass('jp-EnvManager-Panel');
    this.title.icon = envManagerIcon;
    this.title.caption = this._trans.__('Environments');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', this._trans.__('Environments'));
  }

  readonly model: EnvManagerModel;

  protected render(): JSX.Element {
    return (
      <>
        <div className="jp-EnvManager-Header">
          <h2 className="jp-EnvManager-Title">
            {this._trans.__('Environments')}
          </h2>
        </div>
        <UseSignal signal={this.model.changed}>
          {() => (
            <EnvList
              model={this.model}
              commands={this._commands}
              trans={this._trans}
            />
          )}
        </UseSignal>
      </>
    );
  }

  private _commands: CommandRegistry;
  private _trans: TranslationBundle;
}

export namespace EnvPanel {
  /**
   * The id of the panel in the left area.
   */
  export const ID = 'jupyter-env-manager-panel';

  export interface IOptions {
    model: EnvManagerModel;
    commands: CommandRegistry;
    trans: TranslationBundle;
  }
}
