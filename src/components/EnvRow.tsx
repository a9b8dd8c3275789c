import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyJSONObject } from '@lumino/coreutils';
import * as React from 'react';
import { CommandIDs } from '../tokens';
import type { IEnv } from '../tokens';
import { formatBytes } from '../pins';
import { fullTime, humanTime } from '../time';
import {
  LifecycleBadge,
  LifecycleNote,
  publishingButtons
} from './RequestsSection';

/**
 * A button running a command; when the command does not apply it stays
 * focusable but is marked disabled, and its tooltip (the command's caption)
 * says why.
 */
export function CommandButton(props: {
  commands: CommandRegistry;
  id: string;
  args: ReadonlyJSONObject;
  className?: string;
}): JSX.Element {
  const { commands, id, args } = props;
  const enabled = commands.isEnabled(id, args);
  const label = commands.label(id, args);
  const caption = commands.caption(id, args);
  const run = (event: React.MouseEvent) => {
    event.stopPropagation();
    if (enabled) {
      void commands.execute(id, args);
    }
  };
  return (
    <button
      type="button"
      className={`jp-EnvManager-Action ${props.className ?? ''} ${
        enabled ? '' : 'jp-mod-disabled'
      }`}
      aria-disabled={!enabled}
      title={caption || label}
      aria-label={caption ? `${label}: ${caption}` : label}
      data-command={id}
      onClick={run}
    >
      {label}
    </button>
  );
}

/**
 * The status badge of an environment.
 */
export function StatusBadge(props: {
  env: IEnv;
  trans: TranslationBundle;
}): JSX.Element {
  const { env, trans } = props;
  if (!env.managed) {
    return (
      <span
        className="jp-EnvManager-Badge jp-mod-unmanaged"
        title={trans.__(
          'Found in the store but not created by the environment manager'
        )}
      >
        {trans.__('unmanaged')}
      </span>
    );
  }
  const labels: Record<string, string> = {
    saved: trans.__('saved'),
    building: env.phase
      ? trans.__('building: %1', env.phase)
      : trans.__('building'),
    ready: trans.__('ready'),
    failed: trans.__('failed')
  };
  const title =
    env.status === 'failed' && env.latest_build?.error
      ? env.latest_build.error
      : env.status === 'saved'
        ? trans.__('Spec saved; not built yet')
        : labels[env.status];
  return (
    <span className={`jp-EnvManager-Badge jp-mod-${env.status}`} title={title}>
      {labels[env.status] ?? env.status}
    </span>
  );
}

/**
 * The versions of an environment on disk, which of them notebooks pin, and
 * the disk space it takes ("…" while the server computes it).
 */
export function DiskFacts(props: {
  env: IEnv;
  trans: TranslationBundle;
}): JSX.Element {
  const { env, trans } = props;
  const onDisk = [...(env.materialized ?? [])].sort((a, b) => a - b);
  const pinned = [...(env.pinned ?? [])].sort((a, b) => a - b);
  const versions = (list: number[]) => list.map(v => `v${v}`).join(', ');
  const bytes = env.disk_bytes ?? null;
  return (
    <>
      <dt>{trans.__('On disk')}</dt>
      <dd className="jp-EnvManager-DiskUse">
        <span className="jp-EnvManager-Materialized" title={versions(onDisk)}>
          {onDisk.length > 0
            ? trans._n(
                '%1 version on disk (%2)',
                '%1 versions on disk (%2)',
                onDisk.length,
                versions(onDisk)
              )
            : trans.__('no version on disk')}
        </span>
        {' · '}
        <span
          className="jp-EnvManager-DiskBytes"
          title={
            bytes === null
              ? trans.__('Being computed')
              : trans.__('%1 bytes (hard links counted once)', bytes)
          }
        >
          {bytes === null ? '…' : formatBytes(bytes)}
        </span>
      </dd>
      {pinned.length > 0 && (
        <>
          <dt>{trans.__('Pinned')}</dt>
          <dd
            className="jp-EnvManager-Pinned"
            title={trans.__('Versions pinned by notebooks opened recently')}
          >
            {trans.__('%1 (by notebooks)', versions(pinned))}
          </dd>
        </>
      )}
    </>
  );
}

/**
 * One environment in the panel: a summary line that expands into details and
 * actions.
 */
export function EnvRow(props: {
  env: IEnv;
  commands: CommandRegistry;
  trans: TranslationBundle;
  selected: boolean;
  expanded: boolean;
  onToggle: () => void;
}): JSX.Element {
  const { env, commands, trans, selected, expanded } = props;
  const args = { scope: env.scope, name: env.name };
  const id = `jp-EnvManager-env-${env.scope}-${env.name}`;
  const kernelActive = !!env.kernel?.active;
  const actions = env.managed
    ? [
        env.status === 'building' ? CommandIDs.cancel : CommandIDs.build,
        CommandIDs.edit,
        CommandIDs.showLog,
        CommandIDs.toggleKernel,
        CommandIDs.copy,
        CommandIDs.versions,
        CommandIDs.openPackages,
        CommandIDs.exportEnv,
        CommandIDs.addWheel,
        CommandIDs.remove,
        ...publishingButtons(env)
      ]
    : [CommandIDs.adopt, CommandIDs.toggleKernel, CommandIDs.exportEnv];
  const classes = [
    'jp-EnvManager-Env',
    env.managed ? '' : 'jp-mod-unmanaged',
    selected ? 'jp-mod-selected' : '',
    expanded ? 'jp-mod-expanded' : ''
  ].join(' ');
  return (
    <li className={classes} data-scope={env.scope} data-name={env.name}>
      <button
        type="button"
        className="jp-EnvManager-EnvSummary"
        aria-expanded={expanded}
        aria-controls={`${id}-details`}
        onClick={props.onToggle}
      >
        <span className="jp-EnvManager-EnvTitle">
          <span className="jp-EnvManager-EnvDisplayName">
            {env.display_name || env.name}
          </span>
          <span className="jp-EnvManager-EnvName">{env.name}</span>
        </span>
        <StatusBadge env={env} trans={trans} />
        <LifecycleBadge env={env} trans={trans} />
      </button>
      <div className="jp-EnvManager-EnvMeta">
        <span title={trans.__('Active version')}>
          {env.version !== null
            ? trans.__('v%1', env.version)
            : trans.__('no version')}
        </span>
        {env.python_version && (
          <span title={trans.__('Python version')}>
            {trans.__('Python %1', env.python_version)}
          </span>
        )}
        {typeof env.packages === 'number' &&
          (env.packages > 0 || env.version !== null) && (
            <span title={trans.__('Installed packages')}>
              {trans._n('%1 package', '%1 packages', env.packages)}
            </span>
          )}
        <span
          className={`jp-EnvManager-Kernel ${kernelActive ? 'jp-mod-active' : ''}`}
          title={
            kernelActive
              ? trans.__(
                  'Kernel "%1" is active',
                  env.kernel?.display_name ?? ''
                )
              : trans.__('No active kernel')
          }
        >
          {kernelActive ? trans.__('kernel on') : trans.__('kernel off')}
        </span>
      </div>
      {expanded && (
        <div className="jp-EnvManager-EnvDetails" id={`${id}-details`}>
          {env.description && (
            <p className="jp-EnvManager-EnvDescription">{env.description}</p>
          )}
          <dl className="jp-EnvManager-EnvFacts">
            {env.managed && (
              <>
                <dt>{trans.__('Conda')}</dt>
                <dd>{env.spec.conda.join(', ') || '—'}</dd>
                {env.spec.pip.length > 0 && (
                  <>
                    <dt>{trans.__('Pip')}</dt>
                    <dd>{env.spec.pip.join(', ')}</dd>
                  </>
                )}
                {Object.keys(env.spec.variables ?? {}).length > 0 && (
                  <>
                    <dt>{trans.__('Variables')}</dt>
                    <dd className="jp-EnvManager-Variables">
                      {Object.entries(env.spec.variables ?? {})
                        .map(([name, value]) => `${name}=${value}`)
                        .join(', ')}
                    </dd>
                  </>
                )}
                {Object.keys(env.spec.wheels ?? {}).length > 0 && (
                  <>
                    <dt>{trans.__('Private wheels')}</dt>
                    <dd>{Object.values(env.spec.wheels ?? {}).join(', ')}</dd>
                  </>
                )}
                {env.spec.base && (
                  <>
                    <dt>{trans.__('Base')}</dt>
                    <dd>{env.spec.base}</dd>
                  </>
                )}
              </>
            )}
            {env.managed && <DiskFacts env={env} trans={trans} />}
            <dt>{trans.__('Prefix')}</dt>
            <dd className="jp-EnvManager-Path">{env.prefix}</dd>
            {env.updated_at && (
              <>
                <dt>{trans.__('Updated')}</dt>
                <dd title={fullTime(env.updated_at)}>
                  {humanTime(env.updated_at)}
                </dd>
              </>
            )}
            <LifecycleNote env={env} trans={trans} />
            {env.status === 'failed' && env.latest_build?.error && (
              <>
                <dt>{trans.__('Error')}</dt>
                <dd className="jp-EnvManager-EnvError">
                  {env.latest_build.error}
                </dd>
              </>
            )}
          </dl>
        </div>
      )}
      {(expanded || !env.managed) && (
        <div
          className="jp-EnvManager-EnvActions"
          role="toolbar"
          aria-label={trans.__('Actions for %1', env.name)}
        >
          {actions.map(command => (
            <CommandButton
              key={command}
              commands={commands}
              id={command}
              args={args}
            />
          ))}
        </div>
      )}
    </li>
  );
}
