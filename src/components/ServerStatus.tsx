import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { EnvManagerModel } from '../model';

/**
 * The server extension's state at the top of the panel: its version when all
 * is well, otherwise a plain message saying what is wrong.
 */
export function ServerStatus(props: {
  model: EnvManagerModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, trans } = props;
  const info = model.info;
  switch (model.connection) {
    case 'connecting':
      return (
        <div className="jp-EnvManager-ServerStatus" aria-live="polite">
          {trans.__('Connecting to the server extension…')}
        </div>
      );
    case 'missing':
      return (
        <div className="jp-EnvManager-Error" role="alert" data-reason="missing">
          <strong>
            {trans.__(
              'The jupyter_env_manager server extension is not available.'
            )}
          </strong>{' '}
          {trans.__(
            'Install the Python package jupyter_env_manager in the environment that runs Jupyter Server, check `jupyter server extension list`, then restart the server.'
          )}
          {model.connectionError && (
            <div className="jp-EnvManager-ErrorDetail">
              {model.connectionError}
            </div>
          )}
        </div>
      );
    case 'version-mismatch':
      return (
        <div
          className="jp-EnvManager-Error"
          role="alert"
          data-reason="version-mismatch"
        >
          <strong>{trans.__('Version mismatch.')}</strong>{' '}
          {trans.__(
            'The server extension is version %1 but this frontend is version %2. Reinstall jupyter_env_manager, then restart Jupyter and reload this page.',
            info?.version ?? '?',
            model.frontendVersion
          )}
        </div>
      );
    case 'error':
      return (
        <div className="jp-EnvManager-Error" role="alert" data-reason="error">
          <strong>{trans.__('The server extension failed to answer.')}</strong>{' '}
          {model.connectionError}
        </div>
      );
    default:
      return (
        <div
          className="jp-EnvManager-ServerInfo"
          data-version={info?.version}
          title={trans.__(
            'User %1, engine %2 %3, channels: %4',
            info?.user ?? '',
            info?.engine.name ?? '',
            info?.engine.version ?? '',
            (info?.channels ?? []).join(', ')
          )}
        >
          {trans.__('Server extension %1', info?.version ?? '')}
          {info?.engine && (
            <span className="jp-EnvManager-ServerEngine">
              {' · '}
              {info.engine.name} {info.engine.version}
            </span>
          )}
        </div>
      );
  }
}
