import type { TranslationBundle } from '@jupyterlab/translation';
import { HTMLSelect, InputGroup } from '@jupyterlab/ui-components';
import * as React from 'react';
import type { IEnv, IEnvRef, IPackage, Scope } from '../tokens';
import {
  changeBlocked,
  condaLine,
  filterPackages,
  ISpecEdit,
  specName
} from '../widgets/PackagesLogic';
import type {
  ICompareSide,
  PackagesModel,
  PackagesTab
} from '../widgets/PackagesModel';
import { DiffView } from './DiffView';
import { IPackageActions, PackagesTable } from './PackagesTable';
import { SearchPane } from './SearchPane';

/**
 * The Packages view of one environment: its installed packages (any
 * version), a comparison of two versions, and a search of its channels.
 */
export function PackagesView(props: {
  pm: PackagesModel;
  trans: TranslationBundle;
  /**
   * Show the draft of a spec change; build it when the user confirms.
   */
  onEdit: (edit: ISpecEdit, title: string) => void;
}): JSX.Element {
  const { pm, trans } = props;
  const env = pm.env;
  const tabs: [PackagesTab, string][] = [
    ['installed', trans.__('Installed')],
    ['compare', trans.__('Compare')],
    ['search', trans.__('Search and add')]
  ];
  return (
    <div className="jp-EnvManager-Packages">
      <header className="jp-EnvManager-PackagesHeader">
        <h2>
          {trans.__('Packages of %1', env?.display_name || pm.ref.name)}
          <span className="jp-EnvManager-Muted">
            {` ${pm.ref.scope}/${pm.ref.name}`}
          </span>
        </h2>
        {env?.status === 'building' && (
          <span className="jp-EnvManager-Badge jp-mod-building">
            {trans.__('building')}
          </span>
        )}
      </header>
      <div
        className="jp-EnvManager-PackagesTabs"
        role="tablist"
        aria-label={trans.__('Packages')}
      >
        {tabs.map(([id, label]) => (
          <button
            key={id}
            type="button"
            role="tab"
            data-tab={id}
            aria-selected={pm.tab === id}
            className={`jp-EnvManager-PackagesTab ${
              pm.tab === id ? 'jp-mod-active' : ''
            }`}
            onClick={() => {
              pm.tab = id;
            }}
          >
            {label}
          </button>
        ))}
      </div>
      <div className="jp-EnvManager-PackagesBody" role="tabpanel">
        {pm.tab === 'installed' && (
          <InstalledTab pm={pm} env={env} trans={trans} onEdit={props.onEdit} />
        )}
        {pm.tab === 'compare' && <CompareTab pm={pm} trans={trans} />}
        {pm.tab === 'search' && (
          <SearchPane
            trans={trans}
            {...pm.search}
            installed={pm.list?.packages ?? []}
            addBlocked={changeBlocked(env, trans)}
            onSearch={query => void pm.runSearch(query)}
            onAdd={(name, version) =>
              props.onEdit(
                { op: 'add', kind: 'conda', line: condaLine(name, version) },
                trans.__('Add %1 to %2', name, pm.ref.name)
              )
            }
          />
        )}
      </div>
    </div>
  );
}

function versionOptions(
  trans: TranslationBundle,
  versions: number[],
  inUse: number | null
) {
  return versions.map(v => ({
    value: String(v),
    label: v === inUse ? trans.__('v%1 (in use)', v) : trans.__('v%1', v)
  }));
}

function InstalledTab(props: {
  pm: PackagesModel;
  env: IEnv | undefined;
  trans: TranslationBundle;
  onEdit: (edit: ISpecEdit, title: string) => void;
}): JSX.Element {
  const { pm, env, trans } = props;
  // The inputs keep their own state (a controlled input must change in the
  // same event, and the widget re-renders later); the model keeps them across
  // tabs.
  const [query, setQuery] = React.useState(pm.filter);
  const [requestedOnly, setRequestedOnly] = React.useState(pm.requestedOnly);
  const all = pm.list?.packages ?? [];
  const shown = filterPackages(all, query, requestedOnly);
  const inUse = env?.version ?? null;
  const showing = pm.list?.version ?? null;
  const blocked = changeBlocked(env, trans);
  const inSpec = (pkg: IPackage) =>
    (pkg.kind === 'pip' ? env?.spec.pip : env?.spec.conda)?.some(
      line => specName(line, pkg.kind) === specName(pkg.name, pkg.kind)
    ) ?? false;
  const actionsOf = (pkg: IPackage): IPackageActions => {
    let common = blocked;
    if (!common && showing !== inUse) {
      common = trans.__(
        'This is version %1: show the version in use to change packages',
        showing ?? '?'
      );
    }
    const python =
      pkg.kind === 'conda' && pkg.name === 'python'
        ? trans.__("Python's version is the spec's python field: Edit spec")
        : '';
    return {
      update: common || python,
      remove:
        common ||
        python ||
        (inSpec(pkg)
          ? ''
          : trans.__(
              'A dependency, not in the spec: remove the package that needs it'
            ))
    };
  };
  const edit = (pkg: IPackage, op: 'add' | 'remove') =>
    props.onEdit(
      { op, kind: pkg.kind, line: pkg.name },
      op === 'add'
        ? trans.__('Update %1 to latest', pkg.name)
        : trans.__('Remove %1 from %2', pkg.name, pm.ref.name)
    );
  return (
    <>
      <div className="jp-EnvManager-PackagesBar">
        <label className="jp-EnvManager-Field">
          {trans.__('Version')}
          <HTMLSelect
            className="jp-EnvManager-VersionSelect"
            value={pm.version === null ? '' : String(pm.version)}
            onChange={event =>
              void pm.setVersion(
                event.target.value ? Number(event.target.value) : null
              )
            }
            options={[
              {
                value: '',
                label:
                  inUse === null
                    ? trans.__('in use')
                    : trans.__('in use (v%1)', inUse)
              },
              ...versionOptions(trans, pm.versions, inUse)
            ]}
          />
        </label>
        <InputGroup
          className="jp-EnvManager-PackagesFilter"
          type="search"
          placeholder={trans.__('Filter packages')}
          aria-label={trans.__('Filter packages')}
          value={query}
          onChange={event => {
            setQuery(event.target.value);
            pm.filter = event.target.value;
          }}
          rightIcon="ui-components:filter"
        />
        <label className="jp-EnvManager-Toggle">
          <input
            type="checkbox"
            checked={requestedOnly}
            onChange={event => {
              setRequestedOnly(event.target.checked);
              pm.requestedOnly = event.target.checked;
            }}
          />
          {trans.__('Requested only')}
        </label>
        <span className="jp-EnvManager-Muted jp-EnvManager-PackagesCount">
          {pm.list
            ? trans.__(
                '%1 of %2 packages (v%3)',
                shown.length,
                all.length,
                pm.list.version
              )
            : ''}
        </span>
      </div>
      {pm.error && (
        <p className="jp-EnvManager-Error" role="alert">
          {pm.error}
        </p>
      )}
      {pm.loading && !pm.list && (
        <p className="jp-EnvManager-Muted">{trans.__('Loading…')}</p>
      )}
      {pm.list && (
        <PackagesTable
          packages={shown}
          trans={trans}
          actionsOf={actionsOf}
          onUpdate={pkg => edit(pkg, 'add')}
          onRemove={pkg => edit(pkg, 'remove')}
        />
      )}
    </>
  );
}

/**
 * The environment of the same name in the other store, if it has a version.
 */
function otherCopy(pm: PackagesModel): IEnv | undefined {
  const scope: Scope = pm.ref.scope === 'local' ? 'shared' : 'local';
  const other = pm.model.get({ scope, name: pm.ref.name });
  return other && other.version !== null ? other : undefined;
}

function CompareTab(props: {
  pm: PackagesModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { pm, trans } = props;
  const inUse = pm.env?.version ?? null;
  const versions = pm.versions;
  const other = otherCopy(pm);
  const current = pm.comparison;
  React.useEffect(() => {
    // Start with the version before the one in use against the one in use.
    if (!current && versions.length > 0) {
      const to = inUse ?? versions[0];
      const from = versions.find(v => v < to) ?? to;
      void pm.compare(
        { ref: pm.ref, version: from },
        { ref: pm.ref, version: to }
      );
    }
  }, [current, versions.join(','), inUse]);
  const sideValue = (side: ICompareSide | undefined) =>
    !side
      ? ''
      : side.ref.scope !== pm.ref.scope
        ? `other:${side.ref.scope}`
        : String(side.version ?? inUse ?? '');
  const parse = (value: string): ICompareSide =>
    value.startsWith('other:')
      ? { ref: otherRef(pm.ref, value.slice(6) as Scope), version: null }
      : { ref: pm.ref, version: Number(value) };
  const from = current?.from;
  const to = current?.to;
  const options = versionOptions(trans, versions, inUse);
  return (
    <>
      <div className="jp-EnvManager-PackagesBar">
        <label className="jp-EnvManager-Field">
          {trans.__('From')}
          <HTMLSelect
            className="jp-EnvManager-CompareFrom"
            value={sideValue(from)}
            onChange={event =>
              to && void pm.compare(parse(event.target.value), to)
            }
            options={options}
          />
        </label>
        <label className="jp-EnvManager-Field">
          {trans.__('To')}
          <HTMLSelect
            className="jp-EnvManager-CompareTo"
            value={sideValue(to)}
            onChange={event =>
              from && void pm.compare(from, parse(event.target.value))
            }
            options={[
              ...options,
              ...(other
                ? [
                    {
                      value: `other:${other.scope}`,
                      label: trans.__(
                        '%1/%2 (its copy, v%3 in use)',
                        other.scope,
                        other.name,
                        other.version ?? '?'
                      )
                    }
                  ]
                : [])
            ]}
          />
        </label>
      </div>
      {versions.length === 0 && (
        <p className="jp-EnvManager-Empty">
          {trans.__('No version built yet: nothing to compare.')}
        </p>
      )}
      {current?.error && (
        <p className="jp-EnvManager-Error" role="alert">
          {current.error}
        </p>
      )}
      {current?.diff && <DiffView diff={current.diff} trans={trans} />}
    </>
  );
}

function otherRef(ref: IEnvRef, scope: Scope): IEnvRef {
  return { scope, name: ref.name };
}
