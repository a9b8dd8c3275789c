import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import type { EnvManagerModel } from '../model';
import type {
  IBuild,
  IBuildEvent,
  IEnv,
  IEnvRef,
  IEnvSpec,
  IPackage,
  IPackageChange,
  IPackageDiff,
  IPackageList,
  ISearchResult,
  PackageKind
} from '../tokens';

// ---- Pure helpers (unit-tested) -----------------------------------------------

/**
 * A size in bytes for people: `1.4 MB`, `980 kB`, `12 B`; `—` when unknown.
 */
export function humanSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '—';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/**
 * A channel as a short label: `conda-forge` stays, a URL shows its last
 * path segment (`file:///srv/channels/team/` → `team`); the full URL goes in
 * the tooltip.
 */
export function shortChannel(channel: string | null): string {
  if (!channel) {
    return '';
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(channel)) {
    return channel;
  }
  const parts = channel.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? channel;
}

/**
 * The packages matching what the user typed: every word must occur in the
 * name, version, channel or kind (case-insensitive); `requestedOnly` keeps
 * the packages the spec asks for.
 */
export function filterPackages(
  packages: ReadonlyArray<IPackage>,
  query: string,
  requestedOnly = false
): IPackage[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return packages.filter(pkg => {
    if (requestedOnly && !pkg.requested) {
      return false;
    }
    const haystack = [pkg.name, pkg.version, pkg.channel ?? '', pkg.kind]
      .join(' ')
      .toLowerCase();
    return words.every(word => haystack.includes(word));
  });
}

/**
 * The kinds of change of a diff, in the order the view shows them.
 */
export const CHANGES = [
  'added',
  'removed',
  'upgraded',
  'downgraded',
  'rebuilt'
] as const;

/**
 * A kind of change of a diff.
 */
export type ChangeKind = (typeof CHANGES)[number];

/**
 * The changes of one kind to the packages of one kind (conda or pip).
 */
export interface IDiffGroup {
  kind: PackageKind;
  change: ChangeKind;
  items: IPackageChange[];
}

/**
 * A diff as the view shows it: conda first, then pip; within each added,
 * removed, upgraded, downgraded, rebuilt; empty groups left out; names
 * sorted.
 */
export function groupDiff(diff: IPackageDiff): {
  total: number;
  groups: IDiffGroup[];
} {
  const groups: IDiffGroup[] = [];
  let total = 0;
  for (const kind of ['conda', 'pip'] as PackageKind[]) {
    for (const change of CHANGES) {
      const items = (diff[change] ?? [])
        .filter(item => item.kind === kind)
        .sort((a, b) => a.name.localeCompare(b.name));
      if (items.length) {
        groups.push({ kind, change, items });
        total += items.length;
      }
    }
  }
  return { total, groups };
}

/**
 * The name a spec line is about (`numpy >=1.2` → `numpy`); pip names are
 * normalised as PEP 503 says.
 */
export function specName(line: string, kind: PackageKind): string {
  const match = /^\s*([A-Za-z0-9_][A-Za-z0-9._-]*)/.exec(line);
  const name = match ? match[1] : line.trim();
  return kind === 'pip'
    ? name.replace(/[-_.]+/g, '-').toLowerCase()
    : name.toLowerCase();
}

/**
 * A change of the spec the user asked for: add (or replace) `line`, or
 * remove the package `line` names.
 */
export interface ISpecEdit {
  op: 'add' | 'remove';
  kind: PackageKind;
  line: string;
}

/**
 * The lines of one kind of the spec before and after an edit, for the draft
 * shown before building. It previews what the server will do (a package
 * already listed is replaced in place, else appended; remove drops its
 * line); the server decides, and a refused edit comes back as its message.
 */
export function draftSpec(
  spec: IEnvSpec,
  edit: ISpecEdit
): { before: string[]; after: string[] } {
  const before = [...(edit.kind === 'pip' ? spec.pip : spec.conda)];
  const name = specName(edit.line, edit.kind);
  const same = (line: string) => specName(line, edit.kind) === name;
  let after: string[];
  if (edit.op === 'remove') {
    after = before.filter(line => !same(line));
  } else {
    const index = before.findIndex(same);
    after = [...before];
    if (index >= 0) {
      after[index] = edit.line;
    } else {
      after.push(edit.line);
    }
  }
  return { before, after };
}

/**
 * The conda spec line that asks for `name` at `version` (any version when
 * empty).
 */
export function condaLine(name: string, version?: string | null): string {
  return version ? `${name} ==${version}` : name;
}

/**
 * Why the user may not change the packages of `env` now (the server's
 * reason, from its `actions`), or '' when they may. Adding or removing a
 * package edits the spec and builds it, so both must be allowed.
 */
export function changeBlocked(
  env: IEnv | undefined,
  trans: TranslationBundle = nullTranslator.load('jupyter_env_manager')
): string {
  if (!env) {
    return trans.__('The environment is not listed');
  }
  for (const action of ['edit', 'build'] as const) {
    const state = env.actions?.[action];
    if (!state) {
      return trans.__('The server did not say whether this is allowed');
    }
    if (!state.allowed) {
      return state.reason || trans.__('Not allowed');
    }
  }
  return '';
}

/**
 * The versions of an environment that can be listed (those that built).
 */
export function listableVersions(versions: ReadonlyArray<IBuild>): number[] {
  return versions
    .filter(build => build.status === 'succeeded')
    .map(build => build.version)
    .sort((a, b) => b - a);
}

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
