import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { IBuild, IEnv } from '../tokens';
import { statusLabel } from '../labels';
import { fullTime, humanTime } from '../time';
import { TableHead } from './TableHead';

/**
 * The versions (builds) of an environment, newest first, each with its log
 * and, for good versions other than the active one, a revert button (enabled
 * when the server allows a revert).
 */
export function VersionList(props: {
  env: IEnv;
  versions: IBuild[];
  trans: TranslationBundle;
  onLog: (version: number) => void;
  onRevert: (version: number) => void;
  /**
   * Compare a version with the one in use (in the Packages view).
   */
  onCompare?: (version: number) => void;
  /**
   * Why no version can be restored now (the server's reason), or empty.
   */
  revert?: string;
}): JSX.Element {
  const { env, trans } = props;
  const versions = [...props.versions].sort((a, b) => b.version - a.version);
  if (versions.length === 0) {
    return (
      <p className="jp-EnvManager-Empty">
        {trans.__('No versions yet: build it first.')}
      </p>
    );
  }
  return (
    <table className="jp-EnvManager-Versions">
      <TableHead
        columns={[
          trans.__('Version'),
          trans.__('Status'),
          trans.__('Kind'),
          trans.__('Finished')
        ]}
        actionsLabel={trans.__('Actions')}
      />
      <tbody>
        {versions.map(build => {
          const active = build.version === env.version;
          let why = '';
          if (active) {
            why = trans.__('This is the active version');
          } else if (build.status !== 'succeeded') {
            why = trans.__(
              'Only versions that built successfully can be restored'
            );
          } else if (props.revert) {
            why = props.revert;
          }
          const date = build.finished_at ?? build.started_at;
          return (
            <tr
              key={build.version}
              className={active ? 'jp-mod-active' : ''}
              data-version={build.version}
            >
              <td>
                {trans.__('v%1', build.version)}
                {active && (
                  <span className="jp-EnvManager-Badge jp-mod-ready">
                    {trans.__('active')}
                  </span>
                )}
              </td>
              <td>
                <span
                  className={`jp-EnvManager-Badge jp-mod-${build.status}`}
                  title={build.error ?? undefined}
                >
                  {statusLabel(trans, build.status)}
                </span>
              </td>
              <td>{statusLabel(trans, build.kind)}</td>
              <td title={date ? fullTime(date) : undefined}>
                {date ? humanTime(date) : '—'}
              </td>
              <td className="jp-EnvManager-VersionActions">
                <button
                  type="button"
                  className="jp-EnvManager-Action"
                  aria-label={trans.__(
                    'Show the log of version %1',
                    build.version
                  )}
                  onClick={() => props.onLog(build.version)}
                >
                  {trans.__('Log')}
                </button>
                {props.onCompare && (
                  <CompareButton
                    build={build}
                    active={active}
                    trans={trans}
                    onCompare={props.onCompare}
                  />
                )}
                <button
                  type="button"
                  className={`jp-EnvManager-Action ${why ? 'jp-mod-disabled' : ''}`}
                  aria-disabled={!!why}
                  title={
                    why ||
                    trans.__(
                      'Rebuild the environment as version %1',
                      build.version
                    )
                  }
                  aria-label={trans.__('Revert to version %1', build.version)}
                  onClick={() => !why && props.onRevert(build.version)}
                >
                  {trans.__('Revert')}
                </button>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/**
 * "Compare with…": the packages of a version against the one in use.
 */
function CompareButton(props: {
  build: IBuild;
  active: boolean;
  trans: TranslationBundle;
  onCompare: (version: number) => void;
}): JSX.Element {
  const { build, active, trans } = props;
  const why = active
    ? trans.__('This is the version in use: pick another one to compare')
    : build.status !== 'succeeded'
      ? trans.__('Only versions that built have packages to compare')
      : '';
  return (
    <button
      type="button"
      className={`jp-EnvManager-Action ${why ? 'jp-mod-disabled' : ''}`}
      aria-disabled={!!why}
      title={
        why ||
        trans.__(
          'Compare the packages of version %1 with the version in use',
          build.version
        )
      }
      aria-label={trans.__('Compare version %1 with…', build.version)}
      data-action="compare"
      onClick={() => !why && props.onCompare(build.version)}
    >
      {trans.__('Compare with…')}
    </button>
  );
}
