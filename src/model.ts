import type { Event } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import { ApiError, EnvManagerAPI } from './api';
import {
  EventSchemas,
  IBuild,
  IBuildEvent,
  ICreateEnvRequest,
  IEnv,
  IEnvPatch,
  IEnvRef,
  IImportEnvRequest,
  IServerInfo,
  Scope,
  SCOPES,
  SharedState
} from './tokens';
import { PACKAGE_VERSION, versionsMatch } from './version';

/**
 * Where the connection to the server extension stands.
 */
export type ConnectionState =
  'connecting' | 'ready' | 'missing' | 'version-mismatch' | 'error';

/**
 * The one model of the frontend: server info, the environments of both
 * stores, and the live state of their builds. Components observe `changed`.
 */
export class EnvManagerModel implements IDisposable {
  constructor(options: EnvManagerModel.IOptions = {}) {
    this.api = options.api ?? new EnvManagerAPI();
    this.frontendVersion = options.frontendVersion ?? PACKAGE_VERSION;
    this._reloadDelayMs = options.reloadDelayMs ?? 150;
    this._kernelsDelayMs = options.kernelsDelayMs ?? 500;
    if (options.events) {
      this._events = options.events;
      this._events.connect(this._onServerEvent, this);
    }
  }

  /**
   * The REST client.
   */
  readonly api: EnvManagerAPI;

  /**
   * The version of this frontend.
   */
  readonly frontendVersion: string;

  /**
   * Emitted whenever anything the panel shows changes.
   */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * Emitted for every build event of the server (log viewers follow it).
   */
  get buildChanged(): ISignal<this, IBuildEvent> {
    return this._buildChanged;
  }

  /**
   * Emitted when kernelspecs on the server changed (the server's `kernel`
   * events: a build put a kernelspec in use, a kernel was (de)activated, here
   * or elsewhere): the application refreshes its kernelspecs. A burst of
   * events (a server's start-up sync, many builds) is one emission at most
   * every `kernelsDelayMs`; build events alone never refresh them.
   */
  get kernelsChanged(): ISignal<this, void> {
    return this._kernelsChanged;
  }

  /**
   * Emitted when an environment should be shown (for example from the
   * status bar); the panel scrolls to it.
   */
  get selectionChanged(): ISignal<this, IEnvRef | null> {
    return this._selectionChanged;
  }

  get connection(): ConnectionState {
    return this._connection;
  }

  /**
   * The reason the connection is not `ready`, in plain words.
   */
  get connectionError(): string | null {
    return this._connectionError;
  }

  get info(): IServerInfo | null {
    return this._info;
  }

  /**
   * Whether a shared store is configured on the server.
   */
  get hasSharedStore(): boolean {
    return !!this._info?.shared_root;
  }

  /**
   * Whether this user may create and change environments in the shared store
   * (its file permissions may make it read-only for them).
   */
  get canWriteShared(): boolean {
    return this.sharedState === 'writable';
  }

  get sharedState(): SharedState {
    if (!this.hasSharedStore) {
      return 'unconfigured';
    }
    return (this._info?.shared_access ?? 'write') === 'write'
      ? 'writable'
      : 'read-only';
  }

  get isLoading(): boolean {
    return this._loading;
  }

  /**
   * The error of the last listing of a scope, if it failed.
   */
  listError(scope: Scope): string | null {
    return this._listErrors.get(scope) ?? null;
  }

  get filter(): string {
    return this._filter;
  }
  set filter(value: string) {
    if (value !== this._filter) {
      this._filter = value;
      this._changed.emit();
    }
  }

  /**
   * The `which` filter: only the environments holding a package matching
   * `spec` are listed (null: no such filter).
   */
  get which(): { spec: string; keys: Set<string> } | null {
    return this._which;
  }

  /**
   * Ask the server which environments hold a package matching `spec` and
   * list only those; `null` clears the filter.
   */
  async filterWhich(spec: string | null): Promise<number> {
    if (spec === null) {
      this._which = null;
      this._changed.emit();
      return 0;
    }
    const matches = await this.api.which(spec);
    this._which = {
      spec,
      keys: new Set(matches.map(m => `${m.scope}/${m.name}`))
    };
    this._changed.emit();
    return this._which.keys.size;
  }

  get selected(): IEnvRef | null {
    return this._selected;
  }

  /**
   * Select (highlight) an environment; `null` clears the selection.
   */
  select(ref: IEnvRef | null): void {
    this._selected = ref ? { scope: ref.scope, name: ref.name } : null;
    this._selectionChanged.emit(this._selected);
    this._changed.emit();
  }

  /**
   * All environments of a scope, sorted by name.
   */
  environments(scope: Scope): readonly IEnv[] {
    let sorted = this._sorted.get(scope);
    if (!sorted) {
      // Made once per change, not on every render of a store of thousands.
      sorted = [...(this._envs.get(scope)?.values() ?? [])].sort((a, b) =>
        a.name.localeCompare(b.name)
      );
      this._sorted.set(scope, sorted);
    }
    return sorted;
  }

  /**
   * The environments of a scope that match the filter box.
   */
  filtered(scope: Scope): IEnv[] {
    const words = this._filter.toLowerCase().split(/\s+/).filter(Boolean);
    const which = this._which;
    return this.environments(scope).filter(env => {
      if (which && !which.keys.has(`${env.scope}/${env.name}`)) {
        return false;
      }
      const haystack = [env.name, env.display_name, env.description, env.status]
        .join(' ')
        .toLowerCase();
      return words.every(word => haystack.includes(word));
    });
  }

  /**
   * One environment, if listed.
   */
  get(ref: IEnvRef): IEnv | undefined {
    return this._envs.get(ref.scope)?.get(ref.name);
  }

  /**
   * The environments a new one may be based on.
   */
  baseCandidates(): IEnv[] {
    return SCOPES.flatMap(scope => this.environments(scope)).filter(
      env => env.status === 'ready' || env.version !== null
    );
  }

  /**
   * Ask the server for its info and check it matches this frontend; then
   * list the environments.
   */
  async connect(): Promise<void> {
    this._connection = 'connecting';
    this._connectionError = null;
    this._changed.emit();
    try {
      this._info = await this.api.info();
    } catch (error) {
      this._info = null;
      const apiError = error as ApiError;
      if (apiError.status === 0 || apiError.status === 404) {
        this._connection = 'missing';
        this._connectionError = apiError.message;
      } else {
        this._connection = 'error';
        this._connectionError = apiError.message ?? String(error);
      }
      this._changed.emit();
      return;
    }
    if (!versionsMatch(this._info.version, this.frontendVersion)) {
      this._connection = 'version-mismatch';
      this._connectionError = null;
      this._changed.emit();
      return;
    }
    this._connection = 'ready';
    this._changed.emit();
    await this.refresh();
  }

  /**
   * Re-list the environments of every configured store this user may read.
   */
  async refresh(): Promise<void> {
    if (this._connection !== 'ready') {
      return this.connect();
    }
    this._loading = true;
    this._changed.emit();
    const scopes = SCOPES.filter(
      scope =>
        scope === 'local' ||
        (this.hasSharedStore && this._info?.shared_access !== 'none')
    );
    await Promise.all(
      scopes.map(async scope => {
        try {
          const envs = await this.api.listEnvironments(scope);
          if (this._lists.get(scope) !== envs) {
            // The same array: the server's list did not change (its ETag).
            this._lists.set(scope, envs);
            this._envs.set(scope, new Map(envs.map(env => [env.name, env])));
            this._sorted.delete(scope);
          }
          this._listErrors.delete(scope);
        } catch (error) {
          this._listErrors.set(scope, (error as Error).message);
        }
      })
    );
    this._loading = false;
    this._changed.emit();
  }

  /**
   * Fetch one environment (with its versions) and update the list.
   */
  async reload(ref: IEnvRef): Promise<IEnv | null> {
    try {
      const env = await this.api.getEnvironment(ref);
      this._upsert(env);
      return env;
    } catch (error) {
      if ((error as ApiError).status === 404) {
        this._remove(ref);
        return null;
      }
      throw error;
    }
  }

  async create(request: ICreateEnvRequest): Promise<IEnv> {
    return this._upsert(await this.api.createEnvironment(request));
  }

  async importYaml(request: IImportEnvRequest): Promise<IEnv> {
    return this._upsert(await this.api.importEnvironment(request));
  }

  /**
   * Import a bundle; its build starts at once.
   */
  async importBundle(
    bundle: Blob,
    scope: Scope,
    name: string
  ): Promise<{ env: IEnv; build: IBuild }> {
    const reply = await this.api.importBundle(bundle, scope, name);
    const env = this._upsert(reply.environment);
    this._applyBuild(env, reply.build);
    return { env, build: reply.build };
  }

  async update(ref: IEnvRef, patch: IEnvPatch): Promise<IEnv> {
    return this._upsert(await this.api.updateEnvironment(ref, patch));
  }

  async remove(ref: IEnvRef): Promise<void> {
    const wasActive = !!this.get(ref)?.kernel?.active;
    await this.api.deleteEnvironment(ref);
    this._remove(ref);
    if (wasActive) {
      this._kernelsChanged.emit();
    }
  }

  async build(ref: IEnvRef): Promise<IBuild> {
    const { build } = await this.api.startBuild(ref);
    this._applyBuild(ref, build);
    return build;
  }

  /**
   * Cancel a build; resolves with the build once the cancel took effect.
   */
  async cancel(ref: IEnvRef, version: number): Promise<IBuild> {
    const build = await this.api.cancelBuild(ref, version);
    await this.reload(ref);
    return build;
  }

  async activate(ref: IEnvRef): Promise<IEnv> {
    const env = this._upsert(await this.api.activate(ref));
    this._kernelsChanged.emit();
    return env;
  }

  async deactivate(ref: IEnvRef): Promise<IEnv> {
    const env = this._upsert(await this.api.deactivate(ref));
    this._kernelsChanged.emit();
    return env;
  }

  async copy(
    ref: IEnvRef,
    to: Scope,
    name?: string
  ): Promise<{ environment: IEnv; build: IBuild }> {
    const reply = await this.api.copy(ref, to, name);
    this._upsert(reply.environment);
    this._applyBuild(reply.environment, reply.build);
    return { environment: reply.environment, build: reply.build };
  }

  async revert(ref: IEnvRef, version: number): Promise<IBuild> {
    const { build } = await this.api.revert(ref, version);
    this._applyBuild(ref, build);
    return build;
  }

  async adopt(ref: IEnvRef): Promise<IEnv> {
    return this._upsert(await this.api.adopt(ref));
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    if (this._kernelsTimer !== null) {
      clearTimeout(this._kernelsTimer);
      this._kernelsTimer = null;
    }
    this._events?.disconnect(this._onServerEvent, this);
    Signal.clearData(this);
  }

  /**
   * Apply one event of the server's event stream.
   */
  handleEvent(emission: Event.Emission): void {
    const data = emission as unknown as Record<string, unknown>;
    const ref = { scope: data.scope as Scope, name: data.name as string };
    if (!ref.scope || !ref.name) {
      return;
    }
    switch (emission.schema_id) {
      case EventSchemas.environment:
        if (data.action === 'deleted') {
          this._remove(ref);
        } else {
          this._scheduleReload(ref);
        }
        break;
      case EventSchemas.build: {
        const event = data as unknown as IBuildEvent;
        const env = this.get(ref);
        if (env && event.action !== 'finished') {
          this._upsert({
            ...env,
            status: 'building',
            phase: event.phase ?? null
          });
        }
        this._buildChanged.emit(event);
        // The server's view (with the actions now allowed) follows the build.
        // Its kernelspec, if any, comes with a kernel event of its own.
        this._scheduleReload(ref);
        break;
      }
      case EventSchemas.kernel:
        this._scheduleReload(ref);
        this._scheduleKernelsChanged();
        break;
      default:
        break;
    }
  }

  private _onServerEvent(_: unknown, emission: Event.Emission): void {
    this.handleEvent(emission);
  }

  /**
   * Coalesce bursts of events about one environment into one request.
   */
  private _scheduleReload(ref: IEnvRef): void {
    if (this._connection !== 'ready') {
      return;
    }
    const key = `${ref.scope}/${ref.name}`;
    if (this._pendingReloads.has(key)) {
      return;
    }
    this._pendingReloads.add(key);
    setTimeout(() => {
      this._pendingReloads.delete(key);
      if (!this._isDisposed) {
        this.reload(ref).catch(error =>
          console.warn('env-manager: reload failed', error)
        );
      }
    }, this._reloadDelayMs);
  }

  /**
   * Coalesce kernel events into one kernelspec refresh per `kernelsDelayMs`.
   */
  private _scheduleKernelsChanged(): void {
    if (this._kernelsTimer !== null) {
      return;
    }
    this._kernelsTimer = setTimeout(() => {
      this._kernelsTimer = null;
      if (!this._isDisposed) {
        this._kernelsChanged.emit();
      }
    }, this._kernelsDelayMs);
  }

  private _applyBuild(ref: IEnvRef, build: IBuild): void {
    const env = this.get(ref);
    if (env) {
      const running = build.status === 'queued' || build.status === 'running';
      this._upsert({
        ...env,
        status: running ? 'building' : env.status,
        phase: running ? build.phase : env.phase,
        latest_build: build
      });
    }
  }

  private _upsert(env: IEnv): IEnv {
    let envs = this._envs.get(env.scope);
    if (!envs) {
      envs = new Map();
      this._envs.set(env.scope, envs);
    }
    const previous = envs.get(env.name);
    // GET lists omit the versions; keep those we already know.
    const merged =
      previous?.versions && !env.versions
        ? { ...env, versions: previous.versions }
        : env;
    envs.set(env.name, merged);
    this._lists.delete(env.scope); // no longer the list as the server sent it
    this._sorted.delete(env.scope);
    this._changed.emit();
    return merged;
  }

  private _remove(ref: IEnvRef): void {
    if (this._envs.get(ref.scope)?.delete(ref.name)) {
      this._lists.delete(ref.scope);
      this._sorted.delete(ref.scope);
      this._changed.emit();
    }
  }

  private _changed = new Signal<this, void>(this);
  private _buildChanged = new Signal<this, IBuildEvent>(this);
  private _kernelsChanged = new Signal<this, void>(this);
  private _selectionChanged = new Signal<this, IEnvRef | null>(this);
  private _events: Event.Stream | null = null;
  private _connection: ConnectionState = 'connecting';
  private _connectionError: string | null = null;
  private _info: IServerInfo | null = null;
  private _loading = false;
  private _envs = new Map<Scope, Map<string, IEnv>>();
  private _lists = new Map<Scope, IEnv[]>(); // the arrays _envs was made from
  private _sorted = new Map<Scope, IEnv[]>(); // environments(scope), until a change
  private _listErrors = new Map<Scope, string>();
  private _filter = '';
  private _which: { spec: string; keys: Set<string> } | null = null;
  private _selected: IEnvRef | null = null;
  private _pendingReloads = new Set<string>();
  private _isDisposed = false;
  private _reloadDelayMs: number;
  private _kernelsDelayMs: number;
  private _kernelsTimer: ReturnType<typeof setTimeout> | null = null;
}

export namespace EnvManagerModel {
  export interface IOptions {
    /**
     * The REST client (tests pass one over a mocked fetch).
     */
    api?: EnvManagerAPI;
    /**
     * The server's event stream (`app.serviceManager.events.stream`).
     */
    events?: Event.Stream;
    /**
     * The frontend version to check the server against.
     */
    frontendVersion?: string;
    /**
     * Delay used to coalesce events about one environment (ms).
     */
    reloadDelayMs?: number;
    /**
     * Delay used to coalesce kernel events into one kernelspec refresh (ms).
     */
    kernelsDelayMs?: number;
  }
}
