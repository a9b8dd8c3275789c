import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import type { EnvManagerModel } from '../model';
import type {
  IBuildEvent,
  IEnv,
  IEnvRef,
  IPackageDiff,
  IPackageList,
  ISearchResult
} from '../tokens';
import { listableVersions } from './PackagesLogic';

// ---- The view's state -----------------------------------------------------------

/**
 * The parts of the Packages view.
 */
export type PackagesTab = 'installed' | 'compare' | 'search';

/**
 * One side of a comparison: a version of this environment, or the version in
 * use of another one (its copy in the other store).
 */
export interface ICompareSide {
  ref: IEnvRef;
  /**
   * null: the version in use.
   */
  version: number | null;
}

/**
 * The state of one Packages view: the packages of the version shown, a
 * comparison and a search. It reloads when a build of its environment ends.
 */
export class PackagesModel implements IDisposable {
  constructor(options: PackagesModel.IOptions) {
    this.model = options.model;
    this.ref = { scope: options.ref.scope, name: options.ref.name };
    this.model.buildChanged.connect(this._onBuild, this);
  }

  readonly model: EnvManagerModel;
  readonly ref: IEnvRef;

  /**
   * Emitted whenever anything the view shows changes.
   */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * The part of the view shown.
   */
  get tab(): PackagesTab {
    return this._tab;
  }
  set tab(value: PackagesTab) {
    if (value !== this._tab) {
      this._tab = value;
      this._changed.emit();
    }
  }

  /**
   * What the user typed in the filter box of the installed packages.
   */
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
   * Whether only the packages the spec asks for are shown.
   */
  get requestedOnly(): boolean {
    return this._requestedOnly;
  }
  set requestedOnly(value: boolean) {
    if (value !== this._requestedOnly) {
      this._requestedOnly = value;
      this._changed.emit();
    }
  }

  /**
   * The environment, as the panel's model knows it.
   */
  get env(): IEnv | undefined {
    return this.model.get(this.ref);
  }

  /**
   * The versions that built, newest first.
   */
  get versions(): number[] {
    return this._versions;
  }

  /**
   * The version chosen (null: follow the version in use).
   */
  get version(): number | null {
    return this._version;
  }

  /**
   * The packages shown, once loaded.
   */
  get list(): IPackageList | null {
    return this._list;
  }

  get loading(): boolean {
    return this._loading;
  }

  get error(): string | null {
    return this._error;
  }

  /**
   * How many times the data was reloaded after a build ended.
   */
  get reloads(): number {
    return this._reloads;
  }

  /**
   * Load the environment's versions and the packages of the version chosen.
   */
  async load(): Promise<void> {
    this._loading = true;
    this._changed.emit();
    try {
      const env = await this.model.reload(this.ref);
      this._versions = listableVersions(env?.versions ?? []);
      if (!env) {
        throw new Error(`${this.ref.scope}/${this.ref.name} no longer exists`);
      }
      if (env.version === null && this._version === null) {
        this._list = null;
        this._error = 'It has no built version yet: build it first.';
      } else {
        this._list = await this.model.api.packages(this.ref, this._version);
        this._error = null;
      }
    } catch (error) {
      this._error = (error as Error).message ?? String(error);
    } finally {
      this._loading = false;
      this._changed.emit();
    }
    if (this._compare) {
      await this.compare(this._compare.from, this._compare.to);
    }
  }

  /**
   * Show another version (null: the one in use).
   */
  async setVersion(version: number | null): Promise<void> {
    this._version = version;
    await this.load();
  }

  // -- compare ----------------------------------------------------------------------

  /**
   * The comparison shown, if any.
   */
  get comparison(): {
    from: ICompareSide;
    to: ICompareSide;
    diff: IPackageDiff | null;
    error: string | null;
  } | null {
    return this._compare;
  }

  /**
   * Compare `from` (a version of this environment) with `to`.
   */
  async compare(from: ICompareSide, to: ICompareSide): Promise<void> {
    const token = ++this._compareToken;
    this._compare = { from, to, diff: null, error: null };
    this._changed.emit();
    const other =
      to.ref.scope !== this.ref.scope || to.ref.name !== this.ref.name
        ? to.ref
        : null;
    try {
      const diff = await this.model.api.diff(
        this.ref,
        from.version ?? this.env?.version ?? 0,
        to.version,
        other
      );
      if (token === this._compareToken) {
        this._compare = { from, to, diff, error: null };
      }
    } catch (error) {
      if (token === this._compareToken) {
        this._compare = {
          from,
          to,
          diff: null,
          error: (error as Error).message ?? String(error)
        };
      }
    }
    this._changed.emit();
  }

  clearComparison(): void {
    this._compare = null;
    this._changed.emit();
  }

  // -- search -----------------------------------------------------------------------

  get search(): {
    query: string;
    results: ISearchResult[] | null;
    channels: string[];
    error: string | null;
    busy: boolean;
  } {
    return this._search;
  }

  /**
   * Search the environment's channels for names starting with `query`; an
   * older answer never replaces a newer one.
   */
  async runSearch(query: string): Promise<void> {
    const q = query.trim().toLowerCase();
    const token = ++this._searchToken;
    if (!q) {
      this._search = { ...EMPTY_SEARCH };
      this._changed.emit();
      return;
    }
    this._search = { ...this._search, query: q, busy: true, error: null };
    this._changed.emit();
    try {
      const reply = await this.model.api.search(q, this.ref);
      if (token !== this._searchToken) {
        return;
      }
      this._search = {
        query: q,
        results: reply.packages,
        channels: reply.channels,
        error: null,
        busy: false
      };
    } catch (error) {
      if (token !== this._searchToken) {
        return;
      }
      this._search = {
        query: q,
        results: null,
        channels: [],
        error: (error as Error).message ?? String(error),
        busy: false
      };
    }
    this._changed.emit();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.model.buildChanged.disconnect(this._onBuild, this);
    Signal.clearData(this);
  }

  private _onBuild(_: EnvManagerModel, event: IBuildEvent): void {
    if (
      event.action !== 'finished' ||
      event.scope !== this.ref.scope ||
      event.name !== this.ref.name
    ) {
      return;
    }
    this._reloads++;
    void this.load();
  }

  private _changed = new Signal<this, void>(this);
  private _tab: PackagesTab = 'installed';
  private _filter = '';
  private _requestedOnly = false;
  private _versions: number[] = [];
  private _version: number | null = null;
  private _list: IPackageList | null = null;
  private _loading = false;
  private _error: string | null = null;
  private _reloads = 0;
  private _compare: {
    from: ICompareSide;
    to: ICompareSide;
    diff: IPackageDiff | null;
    error: string | null;
  } | null = null;
  private _compareToken = 0;
  private _search = { ...EMPTY_SEARCH };
  private _searchToken = 0;
  private _isDisposed = false;
}

const EMPTY_SEARCH = {
  query: '',
  results: null as ISearchResult[] | null,
  channels: [] as string[],
  error: null as string | null,
  busy: false
};

export namespace PackagesModel {
  export interface IOptions {
    model: EnvManagerModel;
    ref: IEnvRef;
  }
}
