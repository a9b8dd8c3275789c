import type { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  InputDialog,
  Notification,
  ReactWidget,
  showDialog
} from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import * as React from 'react';
import { FleetResults, InstallAllBody } from './components/Fleet';
import type { EnvManagerModel } from './model';
import { CommandIDs, SCOPES } from './tokens';
import type { IEnv, Scope } from './tokens';

/**
 * The commands of the workflows over many environments and of private
 * wheels: "Add package to selected environments…", "Find environments with a
 * package…" and "Add a wheel…" (on an environment).
 */
export function addFleetCommands(
  app: JupyterFrontEnd,
  options: { model: EnvManagerModel; trans: TranslationBundle }
): void {
  const { commands } = app;
  const { model, trans } = options;
  const ready = () => model.connection === 'ready';
  const fail = (title: string, error: unknown) =>
    Notification.error(`${title}: ${(error as Error).message ?? error}`, {
      autoClose: false
    });
  const envOf = (args: ReadonlyPartialJSONObject): IEnv | undefined =>
    typeof args.scope === 'string' && typeof args.name === 'string'
      ? model.get({ scope: args.scope as Scope, name: args.name })
      : undefined;

  commands.addCommand(CommandIDs.installAll, {
    label: trans.__('Add package to selected environments…'),
    caption: trans.__(
      'Install conda or pip packages into several environments: one build each'
    ),
    isEnabled: ready,
    execute: async () => {
      const envs = SCOPES.flatMap(scope => model.environments(scope)).filter(
        env => env.managed
      );
      const selected = model.selected;
      const body = new InstallAllBody(
        envs,
        selected ? [`${selected.scope}/${selected.name}`] : [],
        trans
      );
      const answer = await showDialog({
        title: trans.__('Add package to selected environments'),
        body,
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({ label: trans.__('Install') })
        ]
      });
      if (!answer.button.accept || !answer.value) {
        return;
      }
      try {
        const rows = await model.api.installAll(answer.value);
        await model.refresh();
        await showDialog({
          title: trans.__('Installing into %1 environments', rows.length),
          body: ReactWidget.create(
            React.createElement(FleetResults, { rows, trans })
          ),
          buttons: [Dialog.okButton({ label: trans.__('Close') })]
        });
      } catch (error) {
        fail(trans.__('Cannot install into the environments'), error);
      }
    }
  });

  commands.addCommand(CommandIDs.which, {
    label: trans.__('Find environments with a package…'),
    caption: trans.__(
      'List only the environments whose version in use holds a package (e.g. requests<2.32)'
    ),
    isEnabled: ready,
    execute: async () => {
      const answer = await InputDialog.getText({
        title: trans.__('Find environments with a package'),
        label: trans.__('A conda match spec or pip requirement'),
        placeholder: 'requests<2.32',
        text: model.which?.spec ?? ''
      });
      if (!answer.button.accept) {
        return;
      }
      try {
        await model.filterWhich(answer.value?.trim() || null);
      } catch (error) {
        fail(trans.__('Cannot search the environments'), error);
      }
    }
  });

  commands.addCommand(CommandIDs.addWheel, {
    label: trans.__('Add a wheel…'),
    caption: args => {
      const env = envOf(args);
      return env?.actions?.build?.allowed === false
        ? (env.actions.build.reason ?? '')
        : trans.__(
            'Add a wheel file of your own (stored with the environment)'
          );
    },
    isEnabled: args => ready() && !!envOf(args)?.actions?.build?.allowed,
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const file = await pickFile('.whl');
      if (!file) {
        return;
      }
      try {
        const { build } = await model.api.uploadWheel(env, file, file.name);
        await model.refresh();
        Notification.info(
          trans.__(
            'Building %1 v%2 with %3',
            env.name,
            build.version,
            file.name
          ),
          { autoClose: 4000 }
        );
      } catch (error) {
        fail(trans.__('Cannot add %1 to %2', file.name, env.name), error);
      }
    }
  });
}

/**
 * Let the user pick one file; resolves with it, or null when cancelled.
 */
function pickFile(accept: string): Promise<File | null> {
  return new Promise(resolve => {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = accept;
    input.onchange = () => resolve(input.files?.[0] ?? null);
    input.oncancel = () => resolve(null);
    input.click();
  });
}
