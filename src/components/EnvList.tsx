import type { TranslationBundle } from '@jupyterlab/translation';
import {
  addIcon,
  fileUploadIcon,
  LabIcon,
  refreshIcon
} from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import * as React from 'react';
import { CommandIDs } from '../tokens';
import type { EnvManagerModel } from '../model';
import type { Scope } from '../tokens';
import { EnvRow } from './EnvRow';
import { ServerStatus } from './ServerStatus';

interface IProps {
  model: EnvManagerModel;
  commands: CommandRegistry;
  trans: TranslationBundle;
}

/**
 * The body of the environments panel: server state, filter box and one
 * section per store.
 */
export function EnvList(props: IProps): JSX.Element {
  const { model, commands, trans } = props;
  const [expanded, setExpanded] = React.useState<Set<string>>(new Set());
  const listRef = React.useRef<HTMLDivElement>(null);

  const selected = model.selected;
  const selectedKey = selected ? `${selected.scope}/${selected.name}` : null;
  React.useEffect(() => {
    if (!selectedKey) {
      return;
    }
    setExpanded(previous => new Set(previous).add(selectedKey));
    const node = listRef.current?.querySelector<HTMLElement>(
      `li[data-scope="${CSS.escape(selected!.scope)}"][data-name="${CSS.escape(
        selected!.name
      )}"] .jp-EnvManager-EnvSummary`
    );
    node?.scrollIntoView({ block: 'nearest' });
    node?.focus();
  }, [selectedKey]);

  const toggle = (key: string) => {
    setExpanded(previous => {
      const next = new Set(previous);
      if (next.has(key)) {
        next.delete(key);
      } else {
        next.add(key);
      }
      return next;
    });
  };

  const ready = model.connection === 'ready';
  return (
    <div className="jp-EnvManager-Body" ref={listRef}>
      <ServerStatus model={model} trans={trans} />
      <div className="jp-EnvManager-Toolbar">
        <input
          type="search"
          className="jp-EnvManager-Filter jp-mod-styled"
          placeholder={trans.__('Filter environments')}
          aria-label={trans.__('Filter environments')}
          value={model.filter}
          disabled={!ready}
          onChange={event => (model.filter = event.target.value)}
        />
        <ToolbarButton
          label={trans.__('New environment')}
          icon={addIcon}
          disabled={!ready}
          onClick={() => void commands.execute(CommandIDs.create)}
        />
        <ToolbarButton
          label={trans.__('Import environment.yml')}
          icon={fileUploadIcon}
          disabled={!ready}
          onClick={() => void commands.execute(CommandIDs.importEnv)}
        />
        <ToolbarButton
          label={trans.__('Refresh')}
          icon={refreshIcon}
          onClick={() => void model.refresh()}
        />
      </div>
      {ready &&
        (['local', 'shared'] as Scope[]).map(scope => (
          <Section
            key={scope}
            scope={scope}
            {...props}
            expanded={expanded}
            onToggle={toggle}
            selectedKey={selectedKey}
          />
        ))}
    </div>
  );
}

function Section(
  props: IProps & {
    scope: Scope;
    expanded: Set<string>;
    onToggle: (key: string) => void;
    selectedKey: string | null;
  }
): JSX.Element {
  const { model, commands, trans, scope } = props;
  const title = scope === 'local' ? trans.__('Local') : trans.__('Shared');
  const headingId = `jp-EnvManager-section-${scope}`;
  const all = model.environments(scope);
  const envs = model.filtered(scope);
  const managed = envs.filter(env => env.managed);
  const unmanaged = envs.filter(env => !env.managed);

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
        onToggle={() => props.onToggle(key)}
      />
    );
  };

  return (
    <section
      className={`jp-EnvManager-Section jp-mod-${scope}`}
      aria-labelledby={headingId}
      data-scope={scope}
    >
      <h3 className="jp-EnvManager-SectionTitle" id={headingId}>
        {title}
        <span className="jp-EnvManager-Count">
          {all.length > 0 ? ` (${all.length})` : ''}
        </span>
        {scope === 'shared' && model.info?.shared_access === 'read' && (
          <span
            className="jp-EnvManager-ReadOnly"
            title={trans.__(
              "You may use these environments and copy them to local, not change them: ask the shared store's owner for write access"
            )}
          >
            {trans.__('read-only')}
          </span>
        )}
      </h3>
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
    </section>
  );
}

/**
 * An icon button of the panel's toolbar; its label is its tooltip and aria-label.
 */
function ToolbarButton(props: {
  label: string;
  icon: LabIcon;
  disabled?: boolean;
  onClick: () => void;
}): JSX.Element {
  return (
    <button
      type="button"
      className="jp-EnvManager-IconButton"
      title={props.label}
      aria-label={props.label}
      disabled={props.disabled}
      onClick={props.onClick}
    >
      <props.icon.react tag="span" elementSize="normal" />
    </button>
  );
}
