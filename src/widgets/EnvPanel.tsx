import type { TranslationBundle } from '@jupyterlab/translation';
import {
  addIcon,
  addAboveIcon,
  CommandToolbarButton,
  FilterBox,
  fileUploadIcon,
  LabIcon,
  PanelWithToolbar,
  ReactWidget,
  refreshIcon,
  searchIcon,
  SidePanel,
  UseSignal
} from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { AccordionPanel, Widget } from '@lumino/widgets';
import * as React from 'react';
import { ExpandedRows, StoreBody } from '../components/EnvList';
import { WhichBanner } from '../components/Fleet';
import { ServerStatus } from '../components/ServerStatus';
import { envManagerIcon } from '../icons';
import type { EnvManagerModel } from '../model';
import { CommandIDs, IEnvRef, Scope, SCOPES } from '../tokens';

/**
 * The left sidebar panel: the server's state in its header, the filter and
 * the New/Import/Refresh buttons in its toolbar, and one section per store
 * (other extensions may add theirs through `IEnvManager.addSection`).
 */
export class EnvPanel extends SidePanel {
  constructor(options: EnvPanel.IOptions) {
    super();
    this.model = options.model;
    const { model, commands, trans } = options;
    this._bundle = trans;
    this.id = EnvPanel.ID;
    this.addClass('jp-EnvManager-Panel');
    this.title.icon = envManagerIcon;
    this.title.caption = trans.__('Environments');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', trans.__('Environments'));
    this.content.node.setAttribute('aria-label', trans.__('Stores'));

    const heading = document.createElement('h2');
    heading.className = 'jp-EnvManager-Title';
    heading.textContent = trans.__('Environments');
    const header = new Widget({ node: heading });
    header.addClass('jp-EnvManager-Header');
    this.header.addWidget(header);
    const status = ReactWidget.create(
      <UseSignal signal={model.changed}>
        {() => <ServerStatus model={model} trans={trans} />}
      </UseSignal>
    );
    status.addClass('jp-EnvManager-Status');
    this.header.addWidget(status);
    const which = ReactWidget.create(
      <UseSignal signal={model.changed}>
        {() => (
          <WhichBanner
            which={model.which}
            trans={trans}
            onClear={() => void model.filterWhich(null)}
          />
        )}
      </UseSignal>
    );
    this.header.addWidget(which);

    this.toolbar.addClass('jp-EnvManager-Toolbar');
    this.toolbar.addItem('filter', this._filterBox());
    // Command buttons: enabled while the command is (connected), icon only,
    // their caption as tooltip and accessible name.
    const buttons: [string, string, LabIcon, string][] = [
      ['create', CommandIDs.create, addIcon, trans.__('New environment')],
      [
        'import',
        CommandIDs.importEnv,
        fileUploadIcon,
        trans.__('Import environment.yml')
      ],
      ['refresh', CommandIDs.refresh, refreshIcon, trans.__('Refresh')],
      [
        'install-all',
        CommandIDs.installAll,
        addAboveIcon,
        trans.__('Add package to selected environments')
      ],
      [
        'which',
        CommandIDs.which,
        searchIcon,
        trans.__('Find environments with a package')
      ]
    ];
    for (const [name, id, icon, caption] of buttons) {
      this.toolbar.addItem(
        name,
        new CommandToolbarButton({ commands, id, icon, label: '', caption })
      );
    }

    for (const scope of SCOPES) {
      this._addStore(scope, options);
    }

    const sync = () => {
      // The sections' own hidden state is their accordion's collapsed state
      // (the layout restorer saves it), so the stores are hidden together,
      // as the accordion, until connected.
      this.content.setHidden(model.connection !== 'ready');
      this._labelSections();
    };
    model.changed.connect(sync, this);
    model.selectionChanged.connect(this._onSelection, this);
    this._expanded.changed.connect(this._updateStores, this);
    sync();
  }

  readonly model: EnvManagerModel;

  /**
   * Add a section below the stores' ones (ranks 100 and 200 by default).
   */
  addSection(section: Widget, options: { rank?: number } = {}): void {
    const rank = options.rank ?? 500;
    this._ranks.set(section, rank);
    const widgets = [...this.content.widgets];
    const index = widgets.findIndex(w => (this._ranks.get(w) ?? 500) > rank);
    this.insertWidget(index < 0 ? widgets.length : index, section);
  }

  private _addStore(scope: Scope, options: EnvPanel.IOptions): void {
    const { model, commands, trans } = options;
    const section = new PanelWithToolbar();
    section.id = `jp-EnvManager-section-${scope}`;
    section.addClass('jp-EnvManager-Section');
    section.addClass(`jp-mod-${scope}`);
    section.node.dataset.scope = scope;
    if (scope === 'shared') {
      const readOnly = new Widget();
      readOnly.addClass('jp-EnvManager-ReadOnly');
      readOnly.node.textContent = trans.__('read-only');
      readOnly.node.title = trans.__(
        "You may use these environments and copy them to local, not change them: ask the shared store's owner for write access"
      );
      section.toolbar.addItem('read-only', readOnly);
      this._readOnly = readOnly;
    }
    const body = new StoreWidget(model, () => ({
      model,
      commands,
      trans,
      scope,
      expanded: this._expanded,
      selection: this._selection
    }));
    body.addClass('jp-EnvManager-StoreBody');
    section.addWidget(body);
    this._stores.set(scope, section);
    this._bodies.set(scope, body);
    this.addSection(section, { rank: scope === 'local' ? 100 : 200 });
  }

  /**
   * Section titles: the store and its number of environments.
   */
  private _labelSections(): void {
    const trans = this._bundle;
    for (const [scope, section] of this._stores) {
      const count = this.model.environments(scope).length;
      const name = scope === 'local' ? trans.__('Local') : trans.__('Shared');
      section.title.label = count > 0 ? `${name} (${count})` : name;
      section.title.caption =
        scope === 'local'
          ? trans.__('Your environments: %1', this.model.info?.local_root ?? '')
          : trans.__(
              "Your team's environments: %1",
              this.model.info?.shared_root ?? ''
            );
    }
    this._readOnly?.setHidden(this.model.info?.shared_access !== 'read');
  }

  /**
   * The filter box; re-made when the filter is changed from elsewhere (the
   * panel clears it to reveal an environment).
   */
  private _filterBox(): Widget {
    const model = this.model;
    const trans = this._bundle;
    let typed = model.filter;
    let generation = 0;
    const update = (_: unknown, query?: string) => {
      typed = query ?? '';
      model.filter = typed;
    };
    const widget = ReactWidget.create(
      <UseSignal signal={model.changed}>
        {() => {
          if (model.filter !== typed) {
            typed = model.filter;
            generation++;
          }
          return (
            <FilterBox
              key={generation}
              placeholder={trans.__('Filter environments')}
              initialQuery={model.filter}
              disabled={model.connection !== 'ready'}
              updateFilter={update as never}
              useFuzzyFilter={false}
              showIcon={false}
            />
          );
        }}
      </UseSignal>
    );
    widget.addClass('jp-EnvManager-Filter');
    return widget;
  }

  private _onSelection(_: EnvManagerModel, ref: IEnvRef | null): void {
    if (!ref) {
      return;
    }
    const section = this._stores.get(ref.scope);
    const index = section ? this.content.widgets.indexOf(section) : -1;
    const accordion = this.content as AccordionPanel;
    if (index >= 0 && section!.isHidden && accordion.expand) {
      accordion.expand(index);
    }
    this._selection++;
    this._expanded.add(`${ref.scope}/${ref.name}`);
    this._updateStores();
  }

  private _updateStores(): void {
    for (const body of this._bodies.values()) {
      body.update();
    }
  }

  private _bundle: TranslationBundle;
  private _expanded = new ExpandedRows();
  private _selection = 0;
  private _stores = new Map<Scope, PanelWithToolbar>();
  private _bodies = new Map<Scope, StoreWidget>();
  private _ranks = new WeakMap<Widget, number>();
  private _readOnly: Widget | null = null;
}

/**
 * The rows of one store. Each render makes a new element, so that `update()`
 * re-renders them (rows expanded or selected) as the model's changes do.
 */
class StoreWidget extends ReactWidget {
  constructor(
    private _model: EnvManagerModel,
    private _props: () => React.ComponentProps<typeof StoreBody>
  ) {
    super();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() => <StoreBody {...this._props()} />}
      </UseSignal>
    );
  }
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
