import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import * as React from 'react';
import type { EnvManagerModel } from '../model';
import type { Scope } from '../tokens';
import { EnvRow } from './EnvRow';

/**
 * How many rows a store's section renders at first, and each time the user
 * asks for more: a store of thousands of environments stays quick to render
 * (the filter box finds any of them).
 */
export const ROWS_SHOWN = 200;

interface IProps {
  model: EnvManagerModel;
  commands: CommandRegistry;
  trans: TranslationBundle;
}

/**
 * The rows of the panel that the user expanded, shared by the sections;
 * `changed` asks them to re-render.
 */
export class ExpandedRows {
  readonly changed = new Signal<this, void>(this);

  has(key: string): boolean {
    return this._keys.has(key);
  }

  toggle(key: string): void {
    if (!this._keys.delete(key)) {
      this._keys.add(key);
    }
    this.changed.emit();
  }

  add(key: string): void {
    if (!this._keys.has(key)) {
      this._keys.add(key);
      this.changed.emit();
    }
  }

  private _keys = new Set<string>();
}

/**
 * The body of a store's section: its error or empty message, then its
 * managed environments and, below a heading, the unmanaged ones. The
 * selected row is scrolled to and focused.
 */
export function StoreBody(
  props: IProps & {
    scope: Scope;
    expanded: ExpandedRows;
    /**
     * Grows each time a selection should be revealed again.
     */
    selection?: number;
  }
): JSX.Element {
  const { model, scope } = props;
  const listRef = React.useRef<HTMLDivElement>(null);
  const selected = model.selected;
  const selectedKey =
    selected && selected.scope === scope
      ? `${selected.scope}/${selected.name}`
      : null;
  const selection = props.selection ?? 0;
  React.useEffect(() => {
    if (!selectedKey) {
      return;
    }
    const node = listRef.current?.querySelector<HTMLElement>(
      `li[data-scope="${CSS.escape(selected!.scope)}"][data-name="${CSS.escape(
        selected!.name
      )}"] .jp-EnvManager-EnvSummary`
    );
    node?.scrollIntoView({ block: 'nearest' });
    node?.focus();
  }, [selectedKey, selection]);
  return (
    <div className="jp-EnvManager-Body" ref={listRef}>
      <Section {...props} selectedKey={selectedKey} />
    </div>
  );
}

function Section(
  props: IProps & {
    scope: Scope;
    expanded: ExpandedRows;
    selectedKey: string | null;
  }
): JSX.Element {
  const { model, commands, trans, scope } = props;
  const [limit, setLimit] = React.useState(ROWS_SHOWN);
  const all = model.environments(scope);
  const envs = model.filtered(scope);
  const managed = shown(
    envs.filter(env => env.managed),
    limit,
    props.selectedKey
  );
  const unmanaged = shown(
    envs.filter(env => !env.managed),
    limit - managed.length,
    props.selectedKey
  );
  const hidden = envs.length - managed.length - unmanaged.length;

  let empty: string | null = null;
  const error = model.listError(scope);
  if (scope === 'shared' && !model.hasSharedStore) {
    empty = trans.__(
      'No shared store is configured. Set c.EnvManager.shared_root (or the environment variable JUPYTER_ENV_MANAGER_SHARED_ROOT) on the server to share environments with your team.'
    );
  } else if (scope === 'shared' && model.info?.shared_access === 'none') {
    empty = trans.__(
      'You may not read the shared store %1: ask its owner to give your group read access.',
      model.info.shared_root ?? ''
    );
  } else if (error) {
    empty = null;
  } else if (all.length === 0) {
    empty = model.isLoading
      ? trans.__('Loading…')
      : scope === 'local'
        ? trans.__('No environments yet. Create one with the + button.')
        : trans.__('No shared environments yet. Copy one of yours to shared.');
  } else if (envs.length === 0) {
    empty = trans.__('No environment matches the filter.');
  }

  const row = (env: (typeof envs)[number]) => {
    const key = `${env.scope}/${env.name}`;
    return (
      <EnvRow
        key={key}
        env={env}
        commands={commands}
        trans={trans}
        selected={props.selectedKey === key}
        expanded={props.expanded.has(key)}
        onToggle={() => props.expanded.toggle(key)}
      />
    );
  };

  return (
    <>
      {error && (
        <div className="jp-EnvManager-Error" role="alert">
          {error}
        </div>
      )}
      {empty && <p className="jp-EnvManager-Empty">{empty}</p>}
      {managed.length > 0 && (
        <ul className="jp-EnvManager-EnvList">{managed.map(row)}</ul>
      )}
      {unmanaged.length > 0 && (
        <>
          <h4 className="jp-EnvManager-SubTitle">{trans.__('Not managed')}</h4>
          <ul className="jp-EnvManager-EnvList jp-mod-unmanaged">
            {unmanaged.map(row)}
          </ul>
        </>
      )}
      {hidden > 0 && (
        <p className="jp-EnvManager-More">
          <button
            type="button"
            className="jp-EnvManager-ShowMore"
            onClick={() => setLimit(limit + ROWS_SHOWN)}
          >
            {trans.__(
              'Show %1 more (%2 not shown)',
              Math.min(ROWS_SHOWN, hidden),
              hidden
            )}
          </button>{' '}
          {trans.__('or type in the filter box to find one.')}
        </p>
      )}
    </>
  );
}

/**
 * The first `limit` of `envs`, and the selected one wherever it is.
 */
function shown<T extends { scope: string; name: string }>(
  envs: T[],
  limit: number,
  selectedKey: string | null
): T[] {
  if (envs.length <= limit) {
    return envs;
  }
  const head = envs.slice(0, Math.max(0, limit));
  const selected = selectedKey
    ? envs.find(env => `${env.scope}/${env.name}` === selectedKey)
    : undefined;
  if (selected && !head.includes(selected)) {
    head.push(selected);
  }
  return head;
}
