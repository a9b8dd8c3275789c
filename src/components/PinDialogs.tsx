import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import { versionLabel } from '../pins';
import type { IGcResult } from '../tokens';

/**
 * A pinned notebook whose pin cannot be honoured: the server's message and
 * the choice to unpin it (back to the environment's version in use) or to
 * keep the pin (the notebook then gets no other environment's kernel).
 */
export async function showPinProblem(options: {
  trans: TranslationBundle;
  notebook: string;
  message: string;
  /**
   * Whether unpinning is possible (the environment still exists).
   */
  canUnpin: boolean;
}): Promise<'unpin' | 'keep'> {
  const { trans, notebook, message, canUnpin } = options;
  const body = (
    <div className="jp-EnvManager-PinProblem">
      <p className="jp-EnvManager-PinProblemMessage" role="alert">
        {message}
      </p>
      <p>
        {canUnpin
          ? trans.__(
              'Unpin to run %1 on the version in use of its environment, or keep the pin: the notebook then starts no kernel of another environment.',
              notebook
            )
          : trans.__(
              'The pin is kept: %1 starts no kernel of another environment. Choose a kernel yourself to run it elsewhere.',
              notebook
            )}
      </p>
    </div>
  );
  const buttons = [
    Dialog.cancelButton({ label: trans.__('Keep the pin') }),
    ...(canUnpin
      ? [Dialog.warnButton({ label: trans.__('Unpin'), actions: ['unpin'] })]
      : [])
  ];
  const result = await showDialog({
    title: trans.__('This notebook cannot run on its pinned version'),
    body,
    buttons
  });
  return result.button.actions.includes('unpin') ? 'unpin' : 'keep';
}

function GcList(props: {
  entries: Record<string, string[]>;
  trans: TranslationBundle;
  className: string;
}): JSX.Element {
  const keys = Object.keys(props.entries).sort();
  return (
    <ul className={`jp-EnvManager-GcList ${props.className}`}>
      {keys.map(key => (
        <li key={key} data-env={key}>
          <span className="jp-EnvManager-GcEnv">{key}</span>{' '}
          {props.entries[key].map(directory => (
            <span
              key={directory}
              className="jp-EnvManager-GcVersion"
              title={directory}
            >
              {versionLabel(directory)}
            </span>
          ))}
        </li>
      ))}
    </ul>
  );
}

/**
 * How many version directories a gc answer lists.
 */
export function gcCount(entries: Record<string, string[]>): number {
  return Object.values(entries).reduce((n, list) => n + list.length, 0);
}

/**
 * The dry run of a clean-up: what would be removed and what running kernels
 * keep. Resolves true when the user confirms the removal.
 */
export async function showCleanUp(options: {
  trans: TranslationBundle;
  dryRun: IGcResult;
}): Promise<boolean> {
  const { trans, dryRun } = options;
  const count = gcCount(dryRun.removed);
  const kept = gcCount(dryRun.kept_for_kernels);
  const body = (
    <div className="jp-EnvManager-CleanUp">
      {count === 0 ? (
        <p>{trans.__('No old version directory to remove.')}</p>
      ) : (
        <>
          <p>
            {trans._n(
              'The directory of %1 old version would be removed (its spec, lock and log are kept: it can be made again from its lock):',
              'The directories of %1 old versions would be removed (their specs, locks and logs are kept: they can be made again from their locks):',
              count
            )}
          </p>
          <GcList
            entries={dryRun.removed}
            trans={trans}
            className="jp-mod-removed"
          />
        </>
      )}
      {kept > 0 && (
        <>
          <p>{trans.__('Kept because a running kernel uses them:')}</p>
          <GcList
            entries={dryRun.kept_for_kernels}
            trans={trans}
            className="jp-mod-kept"
          />
        </>
      )}
    </div>
  );
  const buttons =
    count === 0
      ? [Dialog.cancelButton({ label: trans.__('Close') })]
      : [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.warnButton({
            label: trans._n('Remove %1 version', 'Remove %1 versions', count),
            actions: ['remove']
          })
        ];
  const result = await showDialog({
    title: trans.__('Clean up old versions'),
    body,
    buttons
  });
  return result.button.actions.includes('remove');
}
