import { Notification } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Poll } from '@lumino/polling';
import { statusLabel } from './labels';
import type { EnvManagerModel } from './model';
import type { IBuild, IBuildEvent, IEnvRef } from './tokens';

const RUNNING = new Set(['queued', 'running']);

/**
 * How much of a message a notification shows (JupyterLab cuts toasts there).
 */
export const NOTIFICATION_LENGTH = 140;

/**
 * `text` cut at the last word boundary that fits in `max` characters, with an
 * ellipsis; never in the middle of a word or a URL (the log has it whole).
 */
export function fitAtWord(text: string, max = NOTIFICATION_LENGTH): string {
  if (text.length <= max) {
    return text;
  }
  const room = text.slice(0, max - 1);
  const cut = room.lastIndexOf(' ');
  return `${(cut > 0 ? room.slice(0, cut) : room).replace(/[\s,;:.]+$/, '')}…`;
}

/**
 * Show a running build as an in-progress notification that turns into
 * success or error, with a "Show log" action, when the build finishes.
 */
export function followBuild(options: {
  model: EnvManagerModel;
  trans: TranslationBundle;
  ref: IEnvRef;
  build: IBuild;
  /**
   * What is running, for the message ("Build", "Copy", ...).
   */
  what: string;
  openLog: (ref: IEnvRef, version: number) => void;
}): void {
  const { model, trans, ref, build, what, openLog } = options;
  const showLog: Notification.IAction = {
    label: trans.__('Show log'),
    caption: trans.__('Open the build log'),
    callback: () => void openLog(ref, build.version)
  };
  const id = Notification.emit(
    trans.__('%1: %2 (version %3)…', what, ref.name, build.version),
    'in-progress',
    { autoClose: false, actions: [showLog] }
  );
  let done = false;
  const finish = (status: string, error: string | null) => {
    if (done) {
      return;
    }
    done = true;
    model.buildChanged.disconnect(onEvent);
    fallback.dispose();
    const ok = status === 'succeeded';
    Notification.update({
      id,
      message: ok
        ? trans.__('%1: %2 version %3 is ready', what, ref.name, build.version)
        : fitAtWord(
            trans.__(
              '%1: %2 version %3 %4%5',
              what,
              ref.name,
              build.version,
              statusLabel(trans, status),
              error ? `: ${error}` : ''
            )
          ),
      type: ok ? 'success' : status === 'cancelled' ? 'warning' : 'error',
      autoClose: ok ? 5000 : false,
      actions: [showLog]
    });
  };
  const onEvent = (_: EnvManagerModel, event: IBuildEvent) => {
    if (
      event.scope !== ref.scope ||
      event.name !== ref.name ||
      event.version !== build.version
    ) {
      return;
    }
    if (event.action === 'finished') {
      void model.api.getBuild(ref, build.version).then(
        b => finish(b.status, b.error),
        () => finish(event.status, null)
      );
    } else if (event.phase && !done) {
      Notification.update({
        id,
        message: trans.__(
          '%1: %2 (version %3): %4…',
          what,
          ref.name,
          build.version,
          event.phase
        ),
        type: 'in-progress',
        autoClose: false,
        actions: [showLog]
      });
    }
  };
  model.buildChanged.connect(onEvent);
  // Events drive the notification; a slow poll covers a lost event socket.
  const fallback = new Poll({
    auto: false,
    factory: async () => {
      const b = await model.api.getBuild(ref, build.version);
      if (!RUNNING.has(b.status)) {
        finish(b.status, b.error);
      }
    },
    frequency: { interval: 15000, backoff: true, max: 60000 },
    name: `jupyter-env-manager:build:${ref.scope}/${ref.name}/${build.version}`
  });
  void fallback.schedule({ interval: 15000, phase: 'started' });
  if (!RUNNING.has(build.status)) {
    finish(build.status, build.error);
  }
}
