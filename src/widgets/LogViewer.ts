import type { TranslationBundle } from '@jupyterlab/translation';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';
import type { EnvManagerModel } from '../model';
import { BUILD_PHASES, IBuild, IBuildEvent, IEnvRef } from '../tokens';
import { statusLabel } from '../labels';
import { fullTime, humanTime } from '../time';

const RUNNING = new Set(['queued', 'running']);

/**
 * The log of one build in the main area. While the build runs a `Poll`
 * follows the log with the offset protocol (each read asks for the bytes after
 * the last ones received) and the current phase; the server's build events
 * make it read at once, and it stops when the build ends.
 */
export class LogViewer extends Widget {
  constructor(options: LogViewer.IOptions) {
    super();
    this.model = options.model;
    this.ref = { scope: options.ref.scope, name: options.ref.name };
    this._version = options.version ?? null;
    this.requestedVersion = options.version ?? null;
    this._trans = options.trans;
    this._poll = new Poll({
      auto: false,
      factory: () => this._read(),
      frequency: {
        interval: options.pollIntervalMs ?? 1000,
        backoff: false
      },
      name: `jupyter-env-manager:log:${options.ref.scope}/${options.ref.name}`
    });
    this.addClass('jp-EnvManager-Log');
    this.node.tabIndex = 0;
    this.node.setAttribute(
      'aria-label',
      this._trans.__('Build log of %1', this.ref.name)
    );

    this._header = document.createElement('div');
    this._header.className = 'jp-EnvManager-LogHeader';
    this._title = document.createElement('h2');
    this._title.className = 'jp-EnvManager-LogTitle';
    this._status = document.createElement('span');
    this._status.className = 'jp-EnvManager-Badge';
    this._status.setAttribute('aria-live', 'polite');
    this._header.append(this._title, this._status);

    this._phases = document.createElement('ol');
    this._phases.className = 'jp-EnvManager-Phases';
    this._phases.setAttribute('aria-label', this._trans.__('Build phases'));
    for (const phase of BUILD_PHASES) {
      const item = document.createElement('li');
      item.className = 'jp-EnvManager-Phase';
      item.dataset.phase = phase;
      item.textContent = phase;
      this._phases.appendChild(item);
    }

    this._message = document.createElement('div');
    this._message.className = 'jp-EnvManager-LogMessage';
    this._message.setAttribute('role', 'status');

    this._pre = document.createElement('pre');
    this._pre.className = 'jp-EnvManager-LogText';

    this.node.append(this._header, this._phases, this._message, this._pre);
    this.model.buildChanged.connect(this._onBuildEvent, this);
    this._renderHeader();
    void this._start();
  }

  readonly model: EnvManagerModel;
  readonly ref: IEnvRef;

  /**
   * The version asked for (null: the latest build).
   */
  readonly requestedVersion: number | null;

  /**
   * The build shown, once known.
   */
  get build(): IBuild | null {
    return this._build;
  }

  /**
   * The full log text received so far.
   */
  get text(): string {
    return this._text;
  }

  /**
   * Whether the viewer is following a running build.
   */
  get isFollowing(): boolean {
    const phase = this._poll.state.phase;
    return (
      this._reading ||
      !(phase === 'constructed' || phase === 'stopped' || phase === 'disposed')
    );
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    this.model.buildChanged.disconnect(this._onBuildEvent, this);
    super.dispose();
  }

  private async _start(): Promise<void> {
    try {
      if (this._version === null) {
        const builds = await this.model.api.listBuilds(this.ref);
        if (builds.length === 0) {
          this._showMessage(
            this._trans.__('This environment has never been built.')
          );
          return;
        }
        this._version = Math.max(...builds.map(build => build.version));
      }
    } catch (error) {
      this._showMessage((error as Error).message, true);
      return;
    }
    this._renderHeader();
    await this._read();
    if (!this.isDisposed && this._build && RUNNING.has(this._build.status)) {
      void this._poll.start();
    }
  }

  /**
   * Read what was appended to the log (and the build's state); stop the poll
   * once the build has ended and all of its log was read.
   */
  private async _read(): Promise<void> {
    if (this.isDisposed || this._version === null || this._reading) {
      return;
    }
    this._reading = true;
    try {
      if (!this._finalFetched) {
        this._build = await this.model.api.getBuild(this.ref, this._version);
        this._finalFetched = !RUNNING.has(this._build.status);
      }
      // Read until the server has nothing more (a finished log may be long).
      for (let i = 0; i < 100; i++) {
        const chunk = await this.model.api.getBuildLog(
          this.ref,
          this._version,
          this._offset
        );
        if (this.isDisposed) {
          return;
        }
        if (chunk.text) {
          this._append(chunk.text);
        }
        const advanced = chunk.next > this._offset;
        this._offset = Math.max(this._offset, chunk.next);
        if (!chunk.text || !advanced) {
          break;
        }
      }
      this._showMessage('');
    } catch (error) {
      this._showMessage((error as Error).message, true);
    } finally {
      this._reading = false;
    }
    if (this.isDisposed) {
      return;
    }
    this._renderHeader();
    if (this._build && !RUNNING.has(this._build.status)) {
      void this._poll.stop();
      if (!this._text) {
        this._showMessage(this._trans.__('The log is empty.'));
      }
    }
  }

  private _onBuildEvent(_: EnvManagerModel, event: IBuildEvent): void {
    if (
      event.scope !== this.ref.scope ||
      event.name !== this.ref.name ||
      event.version !== this._version ||
      !this._build
    ) {
      return;
    }
    this._build = { ...this._build, status: event.status, phase: event.phase };
    this._renderHeader();
    // Read the log now rather than at the next tick; a finished build gets a
    // last read that also stops the polling.
    void this._read();
  }

  private _append(text: string): void {
    const node = this.node;
    const atBottom =
      node.scrollHeight - node.scrollTop - node.clientHeight < 40;
    this._text += text;
    this._pre.appendChild(document.createTextNode(text));
    if (atBottom) {
      node.scrollTop = node.scrollHeight;
    }
  }

  private _renderHeader(): void {
    const trans = this._trans;
    const build = this._build;
    this._title.textContent =
      this._version === null
        ? trans.__('%1: build log', this.ref.name)
        : trans.__(
            '%1 (%2): version %3',
            this.ref.name,
            this.ref.scope,
            this._version
          );
    const status = build?.status ?? 'queued';
    this._status.className = `jp-EnvManager-Badge jp-mod-${status}`;
    let statusText = statusLabel(trans, status);
    if (build?.finished_at) {
      statusText = trans.__(
        '%1 %2',
        statusLabel(trans, status),
        humanTime(build.finished_at)
      );
      this._status.title = fullTime(build.finished_at);
    } else if (build?.phase && RUNNING.has(status)) {
      statusText = trans.__('%1: %2', statusLabel(trans, status), build.phase);
    }
    this._status.textContent = statusText;
    this.node.classList.toggle('jp-mod-running', RUNNING.has(status));

    const current = build?.phase
      ? BUILD_PHASES.indexOf(build.phase as never)
      : -1;
    this._phases
      .querySelectorAll<HTMLElement>('.jp-EnvManager-Phase')
      .forEach((item, i) => {
        let state = 'pending';
        if (status === 'succeeded' || i < current) {
          state = 'done';
        } else if (i === current) {
          state = RUNNING.has(status)
            ? 'active'
            : status === 'failed'
              ? 'failed'
              : 'stopped';
        }
        item.className = `jp-EnvManager-Phase jp-mod-${state}`;
        if (state === 'active') {
          item.setAttribute('aria-current', 'step');
        } else {
          item.removeAttribute('aria-current');
        }
      });
    if (build?.error && !RUNNING.has(status)) {
      this._showMessage(build.error, true);
    }
  }

  private _showMessage(text: string, isError = false): void {
    if (!text && this._build?.error && !RUNNING.has(this._build.status)) {
      text = this._build.error;
      isError = true;
    }
    this._message.textContent = text;
    this._message.classList.toggle('jp-EnvManager-Error', isError && !!text);
  }

  private _trans: TranslationBundle;
  private _poll: Poll;
  private _version: number | null;
  private _build: IBuild | null = null;
  private _offset = 0;
  private _finalFetched = false;
  private _text = '';
  private _reading = false;
  private _header: HTMLElement;
  private _title: HTMLElement;
  private _status: HTMLElement;
  private _phases: HTMLElement;
  private _message: HTMLElement;
  private _pre: HTMLElement;
}

export namespace LogViewer {
  export interface IOptions {
    model: EnvManagerModel;
    ref: IEnvRef;
    /**
     * The build version; the latest build when omitted.
     */
    version?: number;
    trans: TranslationBundle;
    pollIntervalMs?: number;
  }
}
