import { ReactWidget } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { IEnv, IFleetRow, IInstallAllRequest } from '../tokens';

/**
 * Package specs typed in a box: separated by commas or new lines (a conda
 * spec may hold spaces: `numpy >=1.26`).
 */
export function splitSpecs(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map(part => part.trim())
    .filter(Boolean);
}

/**
 * The body of POST install-all for the chosen environments and packages.
 */
export function installAllRequest(
  selected: string[],
  conda: string,
  pip: string
): IInstallAllRequest {
  const request: IInstallAllRequest = { environments: selected };
  const condaSpecs = splitSpecs(conda);
  const pipSpecs = splitSpecs(pip);
  if (condaSpecs.length) {
    request.conda = condaSpecs;
  }
  if (pipSpecs.length) {
    request.pip = pipSpecs;
  }
  return request;
}

function key(env: IEnv): string {
  return `${env.scope}/${env.name}`;
}

/**
 * "Add package to selected environments": a checkbox per environment (one
 * the user may not change is disabled, the server's reason as its tooltip)
 * and the conda and pip packages to add.
 */
export class InstallAllBody extends ReactWidget {
  constructor(
    private _envs: IEnv[],
    initial: string[],
    private _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-EnvManager-InstallAll');
    const allowed = new Set(
      _envs.filter(env => env.actions?.build?.allowed).map(key)
    );
    this._selected = new Set(initial.filter(k => allowed.has(k)));
  }

  getValue(): IInstallAllRequest {
    return installAllRequest([...this._selected], this._conda, this._pip);
  }

  protected render(): JSX.Element {
    const trans = this._trans;
    const toggle = (k: string) => {
      if (this._selected.has(k)) {
        this._selected.delete(k);
      } else {
        this._selected.add(k);
      }
      this.update();
    };
    return (
      <div className="jp-EnvManager-Form">
        <fieldset className="jp-EnvManager-FormRow">
          <legend>{trans.__('Environments')}</legend>
          <ul className="jp-EnvManager-InstallAllList">
            {this._envs.map(env => {
              const state = env.actions?.build;
              const k = key(env);
              return (
                <li key={k} title={state?.allowed ? '' : (state?.reason ?? '')}>
                  <label>
                    <input
                      type="checkbox"
                      name="environment"
                      value={k}
                      disabled={!state?.allowed}
                      checked={this._selected.has(k)}
                      onChange={() => toggle(k)}
                    />{' '}
                    {k}
                  </label>
                </li>
              );
            })}
          </ul>
        </fieldset>
        <div className="jp-EnvManager-FormRow">
          <label htmlFor="jp-EnvManager-installall-conda">
            {trans.__('Conda packages (comma separated)')}
          </label>
          <input
            id="jp-EnvManager-installall-conda"
            name="conda"
            className="jp-mod-styled"
            placeholder="requests >=2.32"
            defaultValue={this._conda}
            onChange={event => (this._conda = event.target.value)}
          />
        </div>
        <div className="jp-EnvManager-FormRow">
          <label htmlFor="jp-EnvManager-installall-pip">
            {trans.__('Pip requirements (comma separated)')}
          </label>
          <input
            id="jp-EnvManager-installall-pip"
            name="pip"
            className="jp-mod-styled"
            placeholder="rich>=13"
            defaultValue={this._pip}
            onChange={event => (this._pip = event.target.value)}
          />
        </div>
      </div>
    );
  }

  private _selected: Set<string>;
  private _conda = '';
  private _pip = '';
}

/**
 * The rows of an install into many environments: environment, versions,
 * packages, outcome and reason.
 */
export function FleetResults(props: {
  rows: IFleetRow[];
  trans: TranslationBundle;
}): JSX.Element {
  const { rows, trans } = props;
  return (
    <table className="jp-EnvManager-FleetResults">
      <thead>
        <tr>
          <th>{trans.__('Environment')}</th>
          <th>{trans.__('Version')}</th>
          <th>{trans.__('Packages')}</th>
          <th>{trans.__('Outcome')}</th>
          <th>{trans.__('Reason')}</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(row => (
          <tr
            key={`${row.scope}/${row.name}`}
            className={`jp-mod-${row.outcome}`}
          >
            <td>{`${row.scope}/${row.name}`}</td>
            <td>
              {`v${row.version_before ?? '-'} → ` +
                (row.version_after
                  ? `v${row.version_after}`
                  : row.build
                    ? `(v${row.build})`
                    : '-')}
            </td>
            <td>
              {row.packages
                .map(p => `${p.name} ${p.before ?? '-'} → ${p.after ?? '…'}`)
                .join(', ')}
            </td>
            <td>{row.outcome}</td>
            <td>{row.reason ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * The panel's `which` filter, shown while it is on, with a button to clear it.
 */
export function WhichBanner(props: {
  which: { spec: string; keys: Set<string> } | null;
  trans: TranslationBundle;
  onClear: () => void;
}): JSX.Element | null {
  const { which, trans } = props;
  if (!which) {
    return null;
  }
  return (
    <div className="jp-EnvManager-WhichBanner" role="status">
      <span>
        {trans._n(
          '%1 environment holds %2',
          '%1 environments hold %2',
          which.keys.size,
          which.spec
        )}
      </span>
      <button
        type="button"
        className="jp-mod-styled jp-mod-reject"
        onClick={props.onClear}
      >
        {trans.__('Show all')}
      </button>
    </div>
  );
}
