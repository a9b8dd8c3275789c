import { Dialog, ReactWidget } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import {
  createRequest,
  EnvFormBody,
  IEnvFormValues,
  patchRequest,
  valuesFromEnv
} from './components/EnvForm';
import { FormDialog } from './components/Form';
import { ImportFormBody, importRequest } from './components/ImportForm';
import { VersionList } from './components/VersionList';
import type { EnvManagerModel } from './model';
import type { IBuild, IEnv, IEnvRef } from './tokens';

/**
 * The "New environment" dialog (`mode: 'create'`) or the "Edit spec" dialog
 * of `env`. It stays open until the server accepts the form; its value is
 * the environment created or saved.
 */
export function showEnvForm(options: {
  model: EnvManagerModel;
  trans: TranslationBundle;
  mode: 'create' | 'edit';
  env?: IEnv;
  /**
   * Called when "Save and build" started a build.
   */
  onBuildStarted: (ref: IEnvRef, build: IBuild) => void;
}): Promise<Dialog.IResult<IEnv | null>> {
  const { model, trans, mode, env, onBuildStarted } = options;
  const info = model.info;
  const bases = model
    .baseCandidates()
    .filter(base => !env || base.scope !== env.scope || base.name !== env.name)
    .map(base => ({
      value: `${base.scope}/${base.name}`,
      label: `${base.display_name || base.name} (${base.scope}/${base.name})`
    }));
  const values: IEnvFormValues = env
    ? valuesFromEnv(env)
    : {
        scope: 'local',
        name: '',
        display_name: '',
        description: '',
        base: '',
        python: '',
        conda: '',
        pip: '',
        channels: ''
      };
  const body = new EnvFormBody({
    mode,
    values,
    bases,
    shared: model.sharedState,
    defaultPython: trans.__('default'),
    defaultChannels: info?.channels ?? [],
    trans,
    submit: async (current, build) => {
      if (mode === 'create') {
        return model.create(createRequest(current, build));
      }
      const ref = { scope: current.scope, name: current.name };
      const saved = await model.update(ref, patchRequest(current));
      if (build) {
        onBuildStarted(ref, await model.build(ref));
      }
      return saved;
    }
  });
  const buttons =
    mode === 'create'
      ? [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({
            label: trans.__('Create'),
            displayType: 'default'
          }),
          Dialog.okButton({
            label: trans.__('Create and build'),
            actions: ['build']
          })
        ]
      : [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({
            label: trans.__('Save'),
            displayType: 'default'
          }),
          Dialog.okButton({
            label: trans.__('Save and build'),
            actions: ['build']
          })
        ];
  const dialog = new FormDialog({
    title:
      mode === 'create'
        ? trans.__('New environment')
        : trans.__('Edit %1', env!.name),
    body,
    buttons,
    focusNodeSelector:
      mode === 'create' ? 'input[name="name"]' : 'textarea[name="conda"]'
  });
  return dialog.launch();
}

/**
 * The "Import environment.yml" dialog. It stays open until the server
 * accepts the file; its value is the environment created.
 */
export function showImportForm(options: {
  model: EnvManagerModel;
  trans: TranslationBundle;
  /**
   * Called with the build a bundle's import started (to follow it).
   */
  onBundleBuild?: (env: IEnv, build: IBuild) => void;
}): Promise<Dialog.IResult<IEnv | null>> {
  const { model, trans, onBundleBuild } = options;
  const body = new ImportFormBody({
    values: { scope: 'local', name: '', environment_yml: '', file_name: '' },
    shared: model.sharedState,
    trans,
    submit: async (values, build) => {
      if (body.bundle) {
        const { env, build: started } = await model.importBundle(
          body.bundle,
          values.scope,
          values.name.trim()
        );
        onBundleBuild?.(env, started);
        return env;
      }
      return model.importYaml(importRequest(values, build));
    }
  });
  const dialog = new FormDialog({
    title: trans.__('Import environment.yml'),
    body,
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({ label: trans.__('Import'), displayType: 'default' }),
      Dialog.okButton({
        label: trans.__('Import and build'),
        actions: ['build']
      })
    ],
    focusNodeSelector: 'textarea[name="environment_yml"]'
  });
  return dialog.launch();
}

/**
 * What the user picked in the versions dialog.
 */
export interface IVersionChoice {
  action: 'log' | 'revert' | 'compare';
  version: number;
}

/**
 * The versions of an environment; resolves with the log to show or the
 * version to revert to, or null when closed.
 */
export async function showVersions(options: {
  env: IEnv;
  versions: IBuild[];
  trans: TranslationBundle;
  /**
   * Why the server does not allow a revert now, or empty.
   */
  revert?: string;
}): Promise<IVersionChoice | null> {
  const { env, versions, trans, revert } = options;
  let chosen: IVersionChoice | null = null;
  const dialog = new Dialog({
    title: trans.__('Versions of %1', env.name),
    body: ReactWidget.create(
      React.createElement(VersionList, {
        env,
        versions,
        trans,
        revert,
        onLog: version => {
          chosen = { action: 'log', version };
          dialog.resolve(0);
        },
        onRevert: version => {
          chosen = { action: 'revert', version };
          dialog.resolve(0);
        },
        onCompare: version => {
          chosen = { action: 'compare', version };
          dialog.resolve(0);
        }
      })
    ),
    buttons: [Dialog.cancelButton({ label: trans.__('Close') })]
  });
  dialog.addClass('jp-EnvManager-VersionsDialog');
  await dialog.launch();
  return chosen;
}

/**
 * Save text as a file through the browser.
 */
export function download(text: string | Blob, filename: string): void {
  const blob =
    typeof text === 'string' ? new Blob([text], { type: 'text/plain' }) : text;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
