import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { IPackageChange, IPackageDiff } from '../tokens';
import { ChangeKind, groupDiff } from '../widgets/PackagesLogic';

function changeLabel(trans: TranslationBundle, change: ChangeKind): string {
  return {
    added: trans.__('Added'),
    removed: trans.__('Removed'),
    upgraded: trans.__('Upgraded'),
    downgraded: trans.__('Downgraded'),
    rebuilt: trans.__('Rebuilt (same version, other build)')
  }[change];
}

function versions(item: IPackageChange): string {
  return item.version !== undefined
    ? item.version
    : `${item.from ?? '?'} → ${item.to ?? '?'}`;
}

/**
 * A diff between two versions, grouped: conda then pip, each by added,
 * removed, upgraded, downgraded and rebuilt, with from → to versions.
 */
export function DiffView(props: {
  diff: IPackageDiff;
  trans: TranslationBundle;
}): JSX.Element {
  const { diff, trans } = props;
  const { total, groups } = groupDiff(diff);
  const side = (ref: IPackageDiff['from']) =>
    `${ref.scope}/${ref.name} v${ref.version}`;
  return (
    <div className="jp-EnvManager-Diff">
      <p className="jp-EnvManager-DiffSummary">
        {total === 0
          ? trans.__(
              'No difference between %1 and %2.',
              side(diff.from),
              side(diff.to)
            )
          : total === 1
            ? trans.__('1 change from %1 to %2', side(diff.from), side(diff.to))
            : trans.__(
                '%1 changes from %2 to %3',
                total,
                side(diff.from),
                side(diff.to)
              )}
      </p>
      {groups.map(group => (
        <section
          key={`${group.kind}-${group.change}`}
          className={`jp-EnvManager-DiffGroup jp-mod-${group.change}`}
          data-kind={group.kind}
          data-change={group.change}
        >
          <h3>
            {changeLabel(trans, group.change)}
            <span className={`jp-EnvManager-Kind jp-mod-${group.kind}`}>
              {group.kind}
            </span>
            <span className="jp-EnvManager-DiffCount">
              {group.items.length}
            </span>
          </h3>
          <ul>
            {group.items.map(item => (
              <li key={item.name} data-name={item.name}>
                <span className="jp-EnvManager-PackageName">{item.name}</span>{' '}
                <span className="jp-EnvManager-DiffVersions">
                  {versions(item)}
                </span>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}
