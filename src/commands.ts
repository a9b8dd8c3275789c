import type { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { fileUploadIcon } from '@jupyterlab/ui-components';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { download, showEnvForm, showImportForm, showVersions } from './dialogs';
import { addFleetCommands } from './fleet';
import { envManagerIcon } from './icons';
import type { EnvManagerModel } from './model';
import { followBuild } from './notifications';
import { CommandIDs } from './tokens';
import type {
  EnvAction,
  ExportFormat,
  IBuild,
  IEnv,
  IEnvRef,
  Scope
} from './tokens';
import type { EnvPanel } from './widgets/EnvPanel';
import { LogViewer } from './widgets/LogViewer';
import { PackagesWidget } from './widgets/PackagesWidget';

export { CommandIDs };

/**
 * What the commands need besides the application.
 */
export interface ICommandOptions {
  model: EnvManagerModel;
  panel: EnvPanel;
  trans: TranslationBundle;
  palette: ICommandPalette | null;
  /**
   * The environment "current" commands act on: the one selected in the
   * panel, else the one of the current notebook's kernel.
   */
  currentEnv: () => IEnvRef | null;
  /**
   * How often a log viewer polls a running build.
   */
  logPollIntervalMs: () => number;
  /**
   * The open log tabs (restored after a reload).
   */
  logs: WidgetTracker<MainAreaWidget<LogViewer>>;
  /**
   * The open Packages tabs (restored after a reload).
   */
  packages?: WidgetTracker<MainAreaWidget<PackagesWidget>>;
}

const RUNNING = new Set(['queued', 'running']);

/**
 * Register the commands (and put the user-level ones in the palette).
 */
export function addCommands(
  app: JupyterFrontEnd,
  options: ICommandOptions
): void {
  const { commands, shell } = app;
  const { model, panel, trans } = options;
  const category = trans.__('Environments');
  const { logs } = options;

  const refOf = (args: ReadonlyPartialJSONObject): IEnvRef | null =>
    typeof args.scope === 'string' && typeof args.name === 'string'
      ? { scope: args.scope as Scope, name: args.name }
      : null;
  const envOf = (args: ReadonlyPartialJSONObject): IEnv | undefined => {
    const ref = refOf(args);
    return ref ? model.get(ref) : undefined;
  };
  const currentRef = (args: ReadonlyPartialJSONObject): IEnvRef | null =>
    refOf(args) ?? options.currentEnv();

  /**
   * Why `action` cannot be taken on `env` now, or '' when it can. The server
   * decides (each environment carries its `actions`); only the connection
   * and the selection are the panel's own business.
   */
  const why = (env: IEnv | undefined, action: EnvAction): string => {
    if (model.connection !== 'ready') {
      return trans.__('Not connected to the server extension');
    }
    if (!env) {
      return trans.__('Select an environment first');
    }
    const state = env.actions?.[action];
    if (!state) {
      return trans.__('The server did not say whether this is allowed');
    }
    return state.allowed ? '' : state.reason || trans.__('Not allowed');
  };

  const fail = (title: string, error: unknown) => {
    Notification.error(`${title}: ${(error as Error).message ?? error}`, {
      autoClose: false
    });
  };

  const openLog = (ref: IEnvRef, version?: number) => {
    const open = logs.find(
      widget =>
        widget.content.ref.scope === ref.scope &&
        widget.content.ref.name === ref.name &&
        widget.content.requestedVersion === (version ?? null)
    );
    if (open) {
      shell.activateById(open.id);
      return open;
    }
    const content = new LogViewer({
      model,
      ref,
      version,
      trans,
      pollIntervalMs: options.logPollIntervalMs()
    });
    const widget = new MainAreaWidget({ content });
    widget.id = `jp-EnvManager-log-${ref.scope}-${ref.name}-${version ?? 'latest'}`;
    widget.title.label = version
      ? trans.__('Log: %1 v%2', ref.name, version)
      : trans.__('Log: %1', ref.name);
    widget.title.icon = envManagerIcon;
    widget.title.closable = true;
    void logs.add(widget);
    shell.add(widget, 'main');
    shell.activateById(widget.id);
    return widget;
  };

  const onBuildStarted = (ref: IEnvRef, build: IBuild) =>
    followBuild({ model, trans, ref, build, what: trans.__('Build'), openLog });

  /**
   * Show an environment the dialog created: follow its build if one
   * started, else say it is saved.
   */
  const announce = (env: IEnv, saved: string) => {
    model.select(env);
    if (env.latest_build && RUNNING.has(env.latest_build.status)) {
      onBuildStarted(env, env.latest_build);
    } else {
      Notification.success(saved, { autoClose: 3000 });
    }
  };

  commands.addCommand(CommandIDs.create, {
    label: trans.__('New Environment…'),
    caption: trans.__('Create a conda environment and its kernel'),
    icon: args => (args.isPalette ? undefined : envManagerIcon),
    isEnabled: () => model.connection === 'ready',
    execute: async () => {
      const result = await showEnvForm({
        model,
        trans,
        mode: 'create',
        onBuildStarted
      });
      const env = result.value;
      if (!result.button.accept || !env) {
        return;
      }
      announce(env, trans.__('Environment %1 saved', env.name));
      return env;
    }
  });

  commands.addCommand(CommandIDs.importEnv, {
    label: trans.__('Import environment.yml…'),
    caption: trans.__('Create an environment from an environment.yml file'),
    icon: args => (args.isPalette ? undefined : fileUploadIcon),
    isEnabled: () => model.connection === 'ready',
    execute: async () => {
      const result = await showImportForm({
        model,
        trans,
        onBundleBuild: (env, build) =>
          followBuild({
            model,
            trans,
            ref: env,
            build,
            what: trans.__('Import'),
            openLog
          })
      });
      const env = result.value;
      if (!result.button.accept || !env) {
        return;
      }
      announce(env, trans.__('Environment %1 imported', env.name));
      return env;
    }
  });

  commands.addCommand(CommandIDs.openPanel, {
    label: trans.__('Show Environments'),
    caption: trans.__('Open the environments panel'),
    execute: args => {
      shell.activateById(panel.id);
      const ref = refOf(args);
      if (ref) {
        // Reveal it even if the filter box hides it.
        if (!model.filtered(ref.scope).some(env => env.name === ref.name)) {
          model.filter = '';
        }
        model.select(ref);
      }
    }
  });

  commands.addCommand(CommandIDs.refresh, {
    label: trans.__('Refresh Environments'),
    execute: () => model.refresh()
  });

  commands.addCommand(CommandIDs.build, {
    label: trans.__('Build'),
    caption: args =>
      why(envOf(args), 'build') || trans.__('Build a new version'),
    isEnabled: args => !why(envOf(args), 'build'),
    execute: async args => {
      const ref = refOf(args);
      if (!ref) {
        return;
      }
      try {
        const build = await model.build(ref);
        followBuild({
          model,
          trans,
          ref,
          build,
          what: trans.__('Build'),
          openLog
        });
      } catch (error) {
        fail(trans.__('Cannot build %1', ref.name), error);
      }
    }
  });

  commands.addCommand(CommandIDs.buildCurrent, {
    label: trans.__('Build Current Environment'),
    caption: args => {
      const ref = currentRef(args);
      return ref
        ? why(model.get(ref), 'build') || trans.__('Build %1', ref.name)
        : trans.__('Select an environment or open a notebook using one');
    },
    isEnabled: args => {
      const ref = currentRef(args);
      return !!ref && !why(model.get(ref), 'build');
    },
    execute: args => {
      const ref = currentRef(args);
      return ref ? commands.execute(CommandIDs.build, { ...ref }) : undefined;
    }
  });

  commands.addCommand(CommandIDs.cancel, {
    label: trans.__('Cancel build'),
    caption: args =>
      why(envOf(args), 'cancel') || trans.__('Stop the running build'),
    isEnabled: args => !why(envOf(args), 'cancel'),
    execute: async args => {
      const env = envOf(args);
      const build = env?.latest_build;
      if (!env || !build) {
        return;
      }
      try {
        await model.cancel(env, build.version);
      } catch (error) {
        fail(trans.__('Cannot cancel the build of %1', env.name), error);
      }
    }
  });

  commands.addCommand(CommandIDs.edit, {
    label: trans.__('Edit spec'),
    caption: args =>
      why(envOf(args), 'edit') ||
      trans.__('Change packages, Python or channels'),
    isEnabled: args => !why(envOf(args), 'edit'),
    execute: async args => {
      const ref = refOf(args);
      const env = ref ? ((await model.reload(ref)) ?? undefined) : undefined;
      if (!env) {
        return;
      }
      await showEnvForm({ model, trans, mode: 'edit', env, onBuildStarted });
    }
  });

  commands.addCommand(CommandIDs.showLog, {
    label: trans.__('Logs'),
    caption: args => {
      const env = envOf(args);
      if (!env) {
        return trans.__('Select an environment first');
      }
      return env.latest_build || typeof args.version === 'number'
        ? trans.__('Show the build log')
        : trans.__('Never built: there is no log yet');
    },
    isEnabled: args =>
      !!envOf(args)?.latest_build || typeof args.version === 'number',
    execute: args => {
      const ref = refOf(args);
      if (ref) {
        openLog(
          ref,
          typeof args.version === 'number' ? args.version : undefined
        );
      }
    }
  });

  const kernelReason = (env: IEnv | undefined): string =>
    why(env, env?.kernel?.active ? 'deactivate' : 'activate');

  commands.addCommand(CommandIDs.toggleKernel, {
    label: args => {
      const env = envOf(args);
      if (env?.kernel?.active) {
        return trans.__('Deactivate kernel');
      }
      return env && !env.managed
        ? trans.__('Make kernel')
        : trans.__('Activate kernel');
    },
    caption: args => {
      const env = envOf(args);
      return (
        kernelReason(env) ||
        (env?.kernel?.active
          ? trans.__('Remove its kernel from the Launcher')
          : trans.__('Offer it as a kernel in the Launcher'))
      );
    },
    isEnabled: args => !kernelReason(envOf(args)),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const activate = !env.kernel?.active;
      try {
        const updated = activate
          ? await model.activate(env)
          : await model.deactivate(env);
        Notification.success(
          activate
            ? trans.__(
                'Kernel "%1" is available',
                updated.kernel?.display_name ?? env.name
              )
            : trans.__('Kernel of %1 removed', env.name),
          { autoClose: 4000 }
        );
      } catch (error) {
        fail(
          activate
            ? trans.__('Cannot activate the kernel of %1', env.name)
            : trans.__('Cannot deactivate the kernel of %1', env.name),
          error
        );
      }
    }
  });

  commands.addCommand(CommandIDs.activateCurrent, {
    label: trans.__('Activate Kernel of Current Environment'),
    caption: args => {
      const ref = currentRef(args);
      return ref
        ? kernelReason(model.get(ref)) ||
            trans.__('Activate the kernel of %1', ref.name)
        : trans.__('Select an environment or open a notebook using one');
    },
    isEnabled: args => {
      const ref = currentRef(args);
      const env = ref ? model.get(ref) : undefined;
      return !!env && !env.kernel?.active && !kernelReason(env);
    },
    execute: args => {
      const ref = currentRef(args);
      return ref
        ? commands.execute(CommandIDs.toggleKernel, { ...ref })
        : undefined;
    }
  });

  const copyAction = (env: IEnv | undefined): EnvAction =>
    env?.scope === 'shared' ? 'copy_local' : 'copy_shared';

  commands.addCommand(CommandIDs.copy, {
    label: args =>
      envOf(args)?.scope === 'shared'
        ? trans.__('Copy to local')
        : trans.__('Copy to shared'),
    caption: args =>
      why(envOf(args), copyAction(envOf(args))) ||
      (envOf(args)?.scope === 'shared'
        ? trans.__('Make your own copy of this environment')
        : trans.__('Share this environment with your team')),
    isEnabled: args => !why(envOf(args), copyAction(envOf(args))),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const to: Scope = env.scope === 'shared' ? 'local' : 'shared';
      const answer = await InputDialog.getText({
        title:
          to === 'shared'
            ? trans.__('Copy %1 to shared', env.name)
            : trans.__('Copy %1 to local', env.name),
        label: trans.__(
          'Name of the copy (leave empty to keep "%1")',
          env.name
        ),
        placeholder: env.name,
        okLabel: trans.__('Copy'),
        cancelLabel: trans.__('Cancel')
      });
      if (!answer.button.accept) {
        return;
      }
      const name = (answer.value ?? '').trim() || undefined;
      try {
        const reply = await model.copy(env, to, name);
        followBuild({
          model,
          trans,
          ref: reply.environment,
          build: reply.build,
          what: trans.__('Copy'),
          openLog
        });
      } catch (error) {
        fail(trans.__('Cannot copy %1', env.name), error);
      }
    }
  });

  commands.addCommand(CommandIDs.versions, {
    label: trans.__('Versions'),
    caption: args =>
      (envOf(args) ? '' : trans.__('Select an environment first')) ||
      trans.__('List versions; revert to one'),
    isEnabled: args => !!envOf(args),
    execute: async args => {
      const ref = refOf(args);
      if (!ref) {
        return;
      }
      let env: IEnv | null;
      let versions: IBuild[];
      try {
        env = await model.reload(ref);
        versions = env?.versions ?? (await model.api.listBuilds(ref));
      } catch (error) {
        fail(trans.__('Cannot list the versions of %1', ref.name), error);
        return;
      }
      if (!env) {
        return;
      }
      const choice = await showVersions({
        env,
        versions,
        trans,
        revert: why(env, 'revert')
      });
      if (choice?.action === 'log') {
        openLog(ref, choice.version);
      } else if (choice?.action === 'compare') {
        await commands.execute(CommandIDs.openPackages, {
          ...ref,
          compare: choice.version
        });
      } else if (choice?.action === 'revert') {
        await commands.execute(CommandIDs.revert, {
          ...ref,
          version: choice.version
        });
      }
    }
  });

  commands.addCommand(CommandIDs.revert, {
    label: args => trans.__('Revert to version %1', String(args.version ?? '')),
    caption: args =>
      why(envOf(args), 'revert') ||
      trans.__('Rebuild the environment as version %1', String(args.version)),
    isEnabled: args =>
      !why(envOf(args), 'revert') && typeof args.version === 'number',
    execute: async args => {
      const ref = refOf(args);
      if (!ref || typeof args.version !== 'number') {
        return;
      }
      try {
        const build = await model.revert(ref, args.version);
        followBuild({
          model,
          trans,
          ref,
          build,
          what: trans.__('Revert to version %1', args.version),
          openLog
        });
      } catch (error) {
        fail(trans.__('Cannot revert %1', ref.name), error);
      }
    }
  });

  commands.addCommand(CommandIDs.exportEnv, {
    label: trans.__('Export'),
    caption: args =>
      why(envOf(args), 'export') ||
      trans.__('Download environment.yml or a lock file'),
    isEnabled: args => !why(envOf(args), 'export'),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const locked = env.version !== null || !env.managed;
      const formats: { value: ExportFormat; label: string }[] = [
        {
          value: 'environment.yml',
          label: trans.__('environment.yml (the spec)')
        }
      ];
      if (locked) {
        formats.push(
          {
            value: 'lock',
            label: trans.__('Lock file (exact packages of the active version)')
          },
          {
            value: 'explicit',
            label: trans.__('Explicit list of package URLs')
          }
        );
      }
      if (locked && env.managed) {
        formats.push({
          value: 'bundle',
          label: trans.__(
            'Bundle (.tar: every package, for a machine with no network)'
          )
        });
      }
      const answer = await InputDialog.getItem({
        title: trans.__('Export %1', env.name),
        label: locked
          ? trans.__('Format')
          : trans.__('Format (lock files need a built version)'),
        items: formats.map(format => format.label),
        okLabel: trans.__('Download'),
        cancelLabel: trans.__('Cancel')
      });
      if (!answer.button.accept || answer.value === null) {
        return;
      }
      const format =
        formats.find(f => f.label === answer.value)?.value ?? 'environment.yml';
      try {
        if (format === 'bundle') {
          const { blob, filename } = await model.api.exportBundle(env);
          download(blob, filename);
          return;
        }
        const { text, filename } = await model.api.exportEnvironment(
          env,
          format
        );
        download(text, filename);
      } catch (error) {
        fail(trans.__('Cannot export %1', env.name), error);
      }
    }
  });

  commands.addCommand(CommandIDs.remove, {
    label: trans.__('Delete'),
    caption: args =>
      why(envOf(args), 'delete') ||
      trans.__('Delete the environment, its versions and its kernel'),
    isEnabled: args => !why(envOf(args), 'delete'),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const answer = await showDialog({
        title: trans.__('Delete %1?', env.name),
        body: env.kernel?.active
          ? trans.__(
              'This deletes %1 (%2), all its versions and its kernel "%3". Running kernels keep working until they stop.',
              env.display_name || env.name,
              env.scope,
              env.kernel.display_name
            )
          : trans.__(
              'This deletes %1 (%2) and all its versions.',
              env.display_name || env.name,
              env.scope
            ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.warnButton({ label: trans.__('Delete') })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
      try {
        await model.remove(env);
        Notification.success(trans.__('Environment %1 deleted', env.name), {
          autoClose: 3000
        });
      } catch (error) {
        await showErrorMessage(
          trans.__('Cannot delete %1', env.name),
          error as Error
        );
      }
    }
  });

  commands.addCommand(CommandIDs.adopt, {
    label: trans.__('Adopt'),
    caption: args =>
      why(envOf(args), 'adopt') ||
      trans.__('Manage it: derive a spec from its installed packages'),
    isEnabled: args => !why(envOf(args), 'adopt'),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      try {
        const adopted = await model.adopt(env);
        Notification.success(trans.__('%1 is now managed', adopted.name), {
          autoClose: 4000
        });
      } catch (error) {
        fail(trans.__('Cannot adopt %1', env.name), error);
      }
    }
  });

  const packagesTracker =
    options.packages ??
    new WidgetTracker<MainAreaWidget<PackagesWidget>>({
      namespace: 'env-manager-packages'
    });
  commands.addCommand(CommandIDs.openPackages, {
    label: args =>
      args.isPalette
        ? trans.__('Show Packages of Environment')
        : trans.__('Packages'),
    caption: args => {
      const ref = currentRef(args);
      const env = ref ? model.get(ref) : undefined;
      if (!env) {
        return trans.__('Select an environment first');
      }
      if (!env.managed) {
        return trans.__('Adopt it first: it has no versions to list');
      }
      if (env.version === null) {
        return trans.__('Build it first: it has no version to list');
      }
      return trans.__(
        'Installed packages of any version, compare versions, search and add'
      );
    },
    isEnabled: args => {
      const ref = currentRef(args);
      const env = ref ? model.get(ref) : undefined;
      return !!env && env.managed && env.version !== null;
    },
    execute: args => {
      const ref = currentRef(args);
      if (!ref) {
        return;
      }
      const tracker = packagesTracker;
      let widget = tracker.find(
        w =>
          w.content.ref.scope === ref.scope && w.content.ref.name === ref.name
      );
      if (!widget) {
        widget = PackagesWidget.createTab({
          model,
          ref,
          trans,
          openLog: (r, version) => void openLog(r, version)
        });
        void tracker.add(widget);
        shell.add(widget, 'main');
      }
      const pm = widget.content.pm;
      if (typeof args.compare === 'number') {
        const inUse = model.get(ref)?.version ?? null;
        pm.tab = 'compare';
        void pm.compare(
          { ref, version: args.compare },
          { ref, version: inUse }
        );
      } else if (
        args.tab === 'installed' ||
        args.tab === 'compare' ||
        args.tab === 'search'
      ) {
        pm.tab = args.tab;
      }
      shell.activateById(widget.id);
      return widget;
    }
  });
  addFleetCommands(app, { model, trans });

  model.changed.connect(() => commands.notifyCommandChanged());

  if (options.palette) {
    for (const command of [
      CommandIDs.create,
      CommandIDs.importEnv,
      CommandIDs.openPanel,
      CommandIDs.buildCurrent,
      CommandIDs.activateCurrent,
      CommandIDs.openPackages,
      CommandIDs.refresh,
      CommandIDs.installAll,
      CommandIDs.which
    ]) {
      options.palette.addItem({ command, category });
    }
  }
}
