import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import {
  INotebookTracker,
  INotebookWidgetFactory,
  NotebookPanel,
  NotebookWidgetFactory
} from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { cleaningIcon, CommandToolbarButton } from '@jupyterlab/ui-components';
import { EnvManagerAPI } from './api';
import type { AccordionPanel } from '@lumino/widgets';
import { addCommands } from './commands';
import {
  addPublishingCommands,
  PublishCommandIDs,
  RequestsModel,
  RequestsSection
} from './components/RequestsSection';
import { kernelEnvironment } from './kernelspec';
import { EnvManagerModel } from './model';
import { CommandIDs, IEnvManager, IEnvRef } from './tokens';
import { EnvPanel } from './widgets/EnvPanel';
import type { LogViewer } from './widgets/LogViewer';
import {
  addCleanUpCommand,
  addPinCommands,
  PinController
} from './widgets/PinController';
import { PinRenderer } from './widgets/PinRenderer';
import { PinStatusItem } from './widgets/PinStatusItem';
import type { PackagesWidget } from './widgets/PackagesWidget';

const PLUGIN_ID = 'jupyter-env-manager:plugin';

/**
 * The environments panel, its model and commands.
 */
const plugin: JupyterFrontEndPlugin<IEnvManager> = {
  id: PLUGIN_ID,
  description:
    'Conda environments as kernels: the Environments panel, its commands and the model other plugins can use.',
  autoStart: true,
  provides: IEnvManager,
  optional: [
    ITranslator,
    ILayoutRestorer,
    ICommandPalette,
    ISettingRegistry,
    INotebookTracker
  ],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    tracker: INotebookTracker | null
  ): IEnvManager => {
    const trans = (translator ?? nullTranslator).load('jupyter_env_manager');
    const model = new EnvManagerModel({
      events: app.serviceManager.events.stream
    });
    model.kernelsChanged.connect(() => {
      void app.serviceManager.kernelspecs.refreshSpecs();
    });

    const panel = new EnvPanel({ model, commands: app.commands, trans });
    app.shell.add(panel, 'left', { rank: 400 });
    restorer?.add(panel, EnvPanel.ID);

    let logPollIntervalMs = 1000;
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const read = () => {
            logPollIntervalMs = settings.get('logPollInterval')
              .composite as number;
          };
          read();
          settings.changed.connect(read);
        })
        .catch(reason =>
          console.warn('env-manager: cannot load settings', reason)
        );
    }

    const notebookEnv = (): IEnvRef | null => {
      const context = tracker?.currentWidget?.sessionContext;
      const kernelName =
        context?.session?.kernel?.name ?? context?.kernelPreference.name;
      return kernelEnvironment(
        kernelName,
        app.serviceManager.kernelspecs.specs
      );
    };

    const logs = new WidgetTracker<MainAreaWidget<LogViewer>>({
      namespace: 'env-manager-log'
    });
    const packages = new WidgetTracker<MainAreaWidget<PackagesWidget>>({
      namespace: 'env-manager-packages'
    });
    addCommands(app, {
      model,
      panel,
      trans,
      palette,
      currentEnv: () =>
        (panel.isVisible && model.selected) || notebookEnv() || model.selected,
      logPollIntervalMs: () => logPollIntervalMs,
      logs,
      packages
    });
    // Packages tabs come back after a reload.
    void restorer?.restore(packages, {
      command: CommandIDs.openPackages,
      args: widget => ({ ...widget.content.ref }),
      name: widget => `${widget.content.ref.scope}/${widget.content.ref.name}`
    });
    // Log tabs come back after a reload.
    void restorer?.restore(logs, {
      command: CommandIDs.showLog,
      args: widget => {
        const { ref, requestedVersion } = widget.content;
        return requestedVersion === null
          ? { ...ref }
          : { ...ref, version: requestedVersion };
      },
      name: widget => {
        const { ref, requestedVersion } = widget.content;
        return `${ref.scope}/${ref.name}/${requestedVersion ?? 'latest'}`;
      }
    });

    addCleanUpCommand(app.commands, {
      manager: model,
      api: model.api,
      trans,
      palette
    });
    panel.toolbar.addItem(
      'clean-up',
      new CommandToolbarButton({
        commands: app.commands,
        id: CommandIDs.cleanUp,
        icon: cleaningIcon,
        label: '',
        caption: trans.__('Clean up old versions')
      })
    );
    // Publishing with approval: the Requests section (approvers) and commands.
    const requests = new RequestsModel(model, app.serviceManager.events.stream);
    addPublishingCommands(app, { model, requests, trans });
    const requestsSection = new RequestsSection({
      requests,
      trans,
      onReview: id =>
        void app.commands.execute(PublishCommandIDs.review, { id })
    });
    // In the panel only while something waits for this approver's review;
    // collapsed when it comes: its title has the count.
    const placeRequests = () => {
      const wanted = requests.canApprove && requests.open > 0;
      if (wanted && !requestsSection.parent) {
        panel.addSection(requestsSection, { rank: 300 });
        const accordion = panel.content as AccordionPanel;
        accordion.collapse(accordion.widgets.indexOf(requestsSection));
      } else if (!wanted && requestsSection.parent) {
        requestsSection.parent = null;
      }
    };
    requests.changed.connect(placeRequests);

    void model.connect();
    return {
      get info() {
        return model.info;
      },
      changed: model.changed,
      buildChanged: model.buildChanged,
      environments: scope => [...model.environments(scope)],
      get: ref => model.get(ref),
      get selected() {
        return model.selected;
      },
      select: ref => model.select(ref),
      refresh: () => model.refresh(),
      addSection: (section, options) => panel.addSection(section, options)
    };
  }
};

/**
 * Notebook pins: the status bar item of the current notebook's environment
 * (pin, unpin), the check of a pinned notebook when it opens, what
 * `%envmgr pin` displays, and the clean-up of old versions.
 */
const pinsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-env-manager:pins',
  description:
    "Pins notebooks to environment versions: the status bar item, the check of a pinned notebook's kernel when it opens, the renderer of %envmgr pin, and the clean-up of old versions.",
  autoStart: true,
  requires: [INotebookTracker, IEnvManager],
  optional: [INotebookWidgetFactory, IStatusBar, ITranslator, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    manager: IEnvManager,
    notebookFactory: NotebookWidgetFactory.IFactory | null,
    statusBar: IStatusBar | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('jupyter_env_manager');
    const api = new EnvManagerAPI(app.serviceManager.serverSettings);
    const kernelspecs = app.serviceManager.kernelspecs;
    const controller = new PinController({
      tracker,
      kernelspecs,
      manager,
      api,
      trans
    });
    // Each notebook renders pin outputs with its own renderer, which knows
    // the notebook it applies them to.
    const seen = new WeakSet<NotebookPanel>();
    const setUp = (panel: NotebookPanel) => {
      if (seen.has(panel)) {
        return;
      }
      seen.add(panel);
      panel.content.rendermime.addFactory(
        PinRenderer.factory({
          trans,
          apply: bundle => controller.applyBundle(panel, bundle)
        })
      );
      controller.watch(panel);
    };
    notebookFactory?.widgetCreated.connect((_, panel) => setUp(panel));
    tracker.widgetAdded.connect((_, panel) => setUp(panel));
    addPinCommands(app.commands, { controller, tracker, trans, palette });
    if (statusBar) {
      const item = new PinStatusItem({
        tracker,
        kernelspecs,
        manager,
        controller,
        commands: app.commands,
        trans
      });
      statusBar.registerStatusItem('jupyter-env-manager:status', {
        item,
        align: 'left',
        rank: 4
      });
    }
  }
};

export default [plugin, pinsPlugin];
