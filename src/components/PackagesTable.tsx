import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { IPackage } from '../tokens';
import { humanSize, shortChannel } from '../widgets/PackagesLogic';
import { TableHead } from './TableHead';

/**
 * What the user may do with one installed package, each with the reason
 * when they may not ('' when they may).
 */
export interface IPackageActions {
  update: string;
  remove: string;
}

/**
 * The installed packages of one version: name (requested ones marked),
 * version, build, channel, conda or pip, size; each row with "Update to
 * latest" and "Remove", disabled with the reason as their tooltip.
 */
export function PackagesTable(props: {
  packages: IPackage[];
  trans: TranslationBundle;
  /**
   * Why a package cannot be updated or removed now ('' when it can).
   */
  actionsOf: (pkg: IPackage) => IPackageActions;
  onUpdate: (pkg: IPackage) => void;
  onRemove: (pkg: IPackage) => void;
}): JSX.Element {
  const { packages, trans } = props;
  return (
    <table className="jp-EnvManager-PackagesTable">
      <TableHead
        columns={[
          trans.__('Name'),
          trans.__('Version'),
          trans.__('Build'),
          trans.__('Channel'),
          trans.__('Type'),
          { label: trans.__('Size'), className: 'jp-EnvManager-PackagesSize' }
        ]}
        actionsLabel={trans.__('Actions')}
      />
      <tbody>
        {packages.map(pkg => {
          const why = props.actionsOf(pkg);
          return (
            <tr
              key={`${pkg.kind}:${pkg.name}`}
              data-name={pkg.name}
              data-kind={pkg.kind}
              className={pkg.requested ? 'jp-mod-requested' : ''}
            >
              <td className="jp-EnvManager-PackageName">
                {pkg.name}
                {pkg.requested && (
                  <span
                    className="jp-EnvManager-Badge jp-mod-requested"
                    title={trans.__('Asked for by the spec')}
                  >
                    {trans.__('requested')}
                  </span>
                )}
              </td>
              <td>{pkg.version}</td>
              <td className="jp-EnvManager-PackageBuild">{pkg.build ?? '—'}</td>
              <td title={pkg.channel ?? undefined}>
                {pkg.channel
                  ? shortChannel(pkg.channel)
                  : pkg.kind === 'pip'
                    ? trans.__('pip index')
                    : '—'}
              </td>
              <td>
                <span className={`jp-EnvManager-Kind jp-mod-${pkg.kind}`}>
                  {pkg.kind}
                </span>
              </td>
              <td
                className="jp-EnvManager-PackagesSize"
                title={pkg.size !== null ? `${pkg.size} B` : undefined}
              >
                {humanSize(pkg.size)}
              </td>
              <td className="jp-EnvManager-PackageActions">
                <ActionButton
                  label={trans.__('Update')}
                  why={why.update}
                  caption={trans.__(
                    'Ask for the latest %1 and build a new version',
                    pkg.name
                  )}
                  ariaLabel={trans.__('Update %1 to latest', pkg.name)}
                  onClick={() => props.onUpdate(pkg)}
                />
                <ActionButton
                  label={trans.__('Remove')}
                  why={why.remove}
                  caption={trans.__(
                    'Remove %1 from the spec and build a new version',
                    pkg.name
                  )}
                  ariaLabel={trans.__('Remove %1', pkg.name)}
                  onClick={() => props.onRemove(pkg)}
                />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/**
 * A button that stays focusable when it does not apply, marked disabled,
 * with the reason as its tooltip.
 */
export function ActionButton(props: {
  label: string;
  why: string;
  caption: string;
  ariaLabel?: string;
  onClick: () => void;
  className?: string;
}): JSX.Element {
  const { why } = props;
  return (
    <button
      type="button"
      className={`jp-EnvManager-Action ${props.className ?? ''} ${
        why ? 'jp-mod-disabled' : ''
      }`}
      aria-disabled={!!why}
      title={why || props.caption}
      aria-label={props.ariaLabel ?? props.label}
      onClick={() => !why && props.onClick()}
    >
      {props.label}
    </button>
  );
}
