import { Token } from '@lumino/coreutils';
import type { ISignal } from '@lumino/signaling';
import type { Widget } from '@lumino/widgets';

/**
 * The scope (store) an environment lives in.
 */
export type Scope = 'local' | 'shared';

/**
 * The scopes in the order the panel shows them.
 */
export const SCOPES: ReadonlyArray<Scope> = ['local', 'shared'];

/**
 * The environment status as reported by the server.
 */
export type EnvStatus = 'saved' | 'building' | 'ready' | 'failed';

/**
 * The build status as reported by the server.
 */
export type BuildStatus =
  'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

/**
 * The phases of a build, in order.
 */
export const BUILD_PHASES = [
  'solve',
  'download',
  'link',
  'pip',
  'verify',
  'kernel'
] as const;

/**
 * A phase of a build.
 */
export type BuildPhase = (typeof BUILD_PHASES)[number];

/**
 * GET info.
 */
export interface IServerInfo {
  version: string;
  user: string;
  local_root: string;
  shared_root: string | null;
  /**
   * What this user may do in the shared store, by its file permissions
   * (null: no shared store).
   */
  shared_access?: SharedAccess | null;
  /**
   * Where this user's builds into the shared store link packages from (null:
   * no shared store, or one this user may not write); `links` false: every
   * file is copied, and `note` says why.
   */
  shared_package_cache?: {
    path: string | null;
    links: boolean;
    note: string;
  } | null;
  channels: string[];
  engine: { name: string; version: string };
  /**
   * Whether this user may approve publish requests, and why (not).
   */
  can_approve?: boolean;
  can_approve_reason?: string;
  /**
   * How this user's environments reach the shared store (null: none).
   */
  publish_policy?: PublishPolicy | null;
  requests_root?: string | null;
}

/**
 * `direct`: copy into the shared store; `approval`: submit a request.
 */
export type PublishPolicy = 'direct' | 'approval';

/**
 * `write`: use and change; `read`: use only; `none`: not even list it.
 */
export type SharedAccess = 'write' | 'read' | 'none';

/**
 * The shared store as a place to put an environment.
 */
export type SharedState = 'writable' | 'read-only' | 'unconfigured';

/**
 * The editable part of an environment.
 */
export interface IEnvSpec {
  python: string | null;
  conda: string[];
  pip: string[];
  channels: string[];
  base: string | null;
  /**
   * environment.yml `variables:`, set when the environment is activated.
   */
  variables?: Record<string, string>;
  /**
   * Private wheels: pip name -> the stored wheel's file name.
   */
  wheels?: Record<string, string>;
}

/**
 * One build (version) of an environment.
 */
export interface IBuild {
  version: number;
  status: BuildStatus;
  phase: BuildPhase | null;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  kind: BuildKind;
}

/**
 * What made a build.
 */
export type BuildKind = 'build' | 'revert' | 'copy' | 'adopt';

/**
 * The actions on an environment the server decides about, in the order the
 * server documents them.
 */
export const ENV_ACTIONS = [
  'build',
  'edit',
  'revert',
  'delete',
  'cancel',
  'copy_local',
  'copy_shared',
  'activate',
  'deactivate',
  'adopt',
  'export',
  'submit',
  'withdraw',
  'approve',
  'reject'
] as const;

/**
 * An action on an environment.
 */
export type EnvAction = (typeof ENV_ACTIONS)[number];

/**
 * Whether the user may take an action now; `reason` says why not (null
 * when allowed). The server computes it from the store's access, the
 * environment's state and the user's role.
 */
export interface IActionState {
  allowed: boolean;
  reason: string | null;
}

/**
 * Every action's state, as the server sends it with an environment.
 */
export type EnvActions = Record<EnvAction, IActionState>;

/**
 * The kernel of an environment.
 */
export interface IKernelInfo {
  name: string;
  display_name: string;
  active: boolean;
}

/**
 * An environment as reported by the server.
 */
export interface IEnv {
  name: string;
  scope: Scope;
  display_name: string;
  description: string;
  status: EnvStatus;
  version: number | null;
  prefix: string;
  spec: IEnvSpec;
  kernel: IKernelInfo | null;
  python_version: string | null;
  packages: number;
  created_at: string | null;
  updated_at: string | null;
  managed: boolean;
  phase: string | null;
  latest_build: IBuild | null;
  /**
   * Draft, pending, published, rejected...: where it is on its way to the
   * team (computed by the server).
   */
  lifecycle?: ILifecycle;
  /**
   * What the user may do with it now, and why not.
   */
  actions: EnvActions;
  /**
   * Only in GET environments/{scope}/{name}.
   */
  versions?: IBuild[];
  /**
   * The versions whose directory exists on disk.
   */
  materialized: number[];
  /**
   * The versions pinned by notebooks opened recently (the pins the server saw).
   */
  pinned: number[];
  /**
   * Real bytes on disk (hard links counted once); null until computed.
   */
  disk_bytes: number | null;
}

/**
 * The body of POST environments (and, without scope/name, of PATCH).
 */
export interface ICreateEnvRequest {
  scope?: Scope;
  name: string;
  display_name?: string | null;
  description?: string | null;
  python?: string | null;
  conda?: string[];
  pip?: string[];
  channels?: string[];
  base?: string | null;
  variables?: Record<string, string> | null;
  build?: boolean;
}

/**
 * The body of POST environments/import: the spec comes from the file, the
 * name too unless given.
 */
export interface IImportEnvRequest {
  scope?: Scope;
  name?: string | null;
  display_name?: string | null;
  /**
   * Exactly one of `environment_yml` and `requirements_txt`.
   */
  environment_yml?: string;
  requirements_txt?: string;
  build?: boolean;
}

/**
 * The body of POST install-all: packages for many environments.
 */
export interface IInstallAllRequest {
  conda?: string[];
  pip?: string[];
  scope?: Scope;
  /**
   * `scope/name` of each environment; all of them when absent.
   */
  environments?: string[];
}

/**
 * One environment's part of an install into many.
 */
export interface IFleetRow {
  scope: Scope;
  name: string;
  outcome: string;
  reason: string | null;
  version_before: number | null;
  version_after: number | null;
  build: number | null;
  packages: {
    name: string;
    kind: 'conda' | 'pip';
    before: string | null;
    after: string | null;
  }[];
}

/**
 * One environment holding a package that matches a `which` spec.
 */
export interface IWhichMatch {
  scope: Scope;
  name: string;
  version: number | null;
  package: string;
  package_version: string;
  kind: 'conda' | 'pip';
}

/**
 * The fields PATCH accepts (`null` clears python or base).
 */
export interface IEnvPatch {
  display_name?: string | null;
  description?: string | null;
  python?: string | null;
  conda?: string[];
  pip?: string[];
  channels?: string[];
  base?: string | null;
  variables?: Record<string, string> | null;
}

/**
 * The formats of GET .../export.
 */
export type ExportFormat = 'environment.yml' | 'lock' | 'explicit' | 'bundle';

/**
 * Identifies an environment.
 */
export interface IEnvRef {
  scope: Scope;
  name: string;
}

/**
 * Whether a package comes from conda or from the pip layer.
 */
export type PackageKind = 'conda' | 'pip';

/**
 * One installed package of a version, from its lock.
 */
export interface IPackage {
  name: string;
  version: string;
  build: string | null;
  channel: string | null;
  kind: PackageKind;
  /**
   * Bytes of the conda archive (null for pip).
   */
  size: number | null;
  /**
   * Asked for by the spec (else a dependency).
   */
  requested: boolean;
}

/**
 * GET .../packages: the packages of one version.
 */
export interface IPackageList {
  scope: Scope;
  name: string;
  version: number;
  packages: IPackage[];
}

/**
 * One version of one environment.
 */
export interface IVersionRef {
  scope: Scope;
  name: string;
  version: number;
}

/**
 * One package of a diff: `version` when added or removed, `from` and `to`
 * when its version (or build) changed.
 */
export interface IPackageChange {
  name: string;
  kind: PackageKind;
  version?: string;
  from?: string;
  to?: string;
}

/**
 * GET .../diff: what changed from one version to another.
 */
export interface IPackageDiff {
  from: IVersionRef;
  to: IVersionRef;
  added: IPackageChange[];
  removed: IPackageChange[];
  upgraded: IPackageChange[];
  downgraded: IPackageChange[];
  rebuilt: IPackageChange[];
}

/**
 * One package found by a search, with its versions (newest first).
 */
export interface ISearchResult {
  name: string;
  latest: string;
  versions: string[];
  channels: string[];
}

/**
 * GET packages/search.
 */
export interface ISearchReply {
  query: string;
  channels: string[];
  packages: ISearchResult[];
}

/**
 * Schema ids of the server's events.
 */
export namespace EventSchemas {
  export const environment =
    'https://events.jupyter.org/jupyter_env_manager/environment/v1';
  export const build =
    'https://events.jupyter.org/jupyter_env_manager/build/v1';
  export const kernel =
    'https://events.jupyter.org/jupyter_env_manager/kernel/v1';
  export const request =
    'https://events.jupyter.org/jupyter_env_manager/request/v1';
}

/**
 * Data of a build event.
 */
export interface IBuildEvent {
  action: 'queued' | 'phase' | 'finished';
  scope: Scope;
  name: string;
  version: number;
  status: BuildStatus;
  phase: BuildPhase | null;
}

/**
 * The kernelspec metadata the server writes for its kernels.
 */
export interface IKernelEnvMetadata {
  scope: Scope;
  name: string;
  version: number | null;
}

/**
 * A notebook's pin, as stored in its `metadata.envmgr`.
 */
export interface IPinMetadata {
  scope: Scope;
  name: string;
  version: number;
  lock_sha256: string;
}

/**
 * The body of POST pins (`version` defaults to the one in use).
 */
export interface IPinRequest {
  scope: Scope;
  name: string;
  version?: number;
}

/**
 * The answer of POST pins and POST pins/check: the pin and the kernel that
 * honours it (the server made sure its kernelspec exists).
 */
export interface IPinResult {
  scope: Scope;
  name: string;
  version: number;
  lock_sha256: string;
  kernel_name: string;
  display_name: string;
  /**
   * Whether the version's directory had to be made from its lock.
   */
  materialized: boolean;
}

/**
 * The answer of POST gc: the version directories removed (or, in a dry run,
 * that would be), and those kept because a running kernel uses them, by
 * `scope/name`.
 */
export interface IGcResult {
  removed: Record<string, string[]>;
  kept_for_kernels: Record<string, string[]>;
}

/**
 * Every command of the extension.
 */
export namespace CommandIDs {
  export const create = 'env-manager:create';
  export const importEnv = 'env-manager:import';
  export const openPanel = 'env-manager:open-panel';
  export const buildCurrent = 'env-manager:build-current';
  export const activateCurrent = 'env-manager:activate-current';
  export const refresh = 'env-manager:refresh';
  export const build = 'env-manager:build';
  export const cancel = 'env-manager:cancel-build';
  export const edit = 'env-manager:edit';
  export const showLog = 'env-manager:show-log';
  export const toggleKernel = 'env-manager:toggle-kernel';
  export const copy = 'env-manager:copy';
  export const versions = 'env-manager:versions';
  export const revert = 'env-manager:revert';
  export const exportEnv = 'env-manager:export';
  export const remove = 'env-manager:delete';
  export const adopt = 'env-manager:adopt';
  export const pinNotebook = 'env-manager:pin-notebook';
  export const unpinNotebook = 'env-manager:unpin-notebook';
  export const cleanUp = 'env-manager:clean-up';
  export const openPackages = 'env-manager:open-packages';
  export const installAll = 'env-manager:install-all';
  export const which = 'env-manager:which';
  export const addWheel = 'env-manager:add-wheel';
}

/**
 * The environment manager, for other extensions: read the environments and
 * their state, follow changes, and add a section to the Environments panel.
 */
export interface IEnvManager {
  /**
   * The server's info, once connected.
   */
  readonly info: IServerInfo | null;
  /**
   * Emitted whenever an environment, the selection or the connection changes.
   */
  readonly changed: ISignal<unknown, void>;
  /**
   * Emitted for every build event of the server.
   */
  readonly buildChanged: ISignal<unknown, IBuildEvent>;
  /**
   * The environments of a store, sorted by name.
   */
  environments(scope: Scope): IEnv[];
  /**
   * One environment (with its `status` and `actions`), if listed.
   */
  get(ref: IEnvRef): IEnv | undefined;
  /**
   * The environment selected in the panel.
   */
  readonly selected: IEnvRef | null;
  /**
   * Select an environment in the panel (null clears the selection).
   */
  select(ref: IEnvRef | null): void;
  /**
   * Re-list the environments.
   */
  refresh(): Promise<void>;
  /**
   * Add a section to the Environments panel, below the stores' sections;
   * give it a `title.label`. Lower ranks come first (the stores' sections
   * have ranks 100 and 200).
   */
  addSection(section: Widget, options?: { rank?: number }): void;
}

/**
 * The environment manager token.
 */
export const IEnvManager = new Token<IEnvManager>(
  'jupyter-env-manager:IEnvManager',
  'The environment manager: the environments of both stores with their state and allowed actions, and sections of the Environments panel.'
);

/**
 * Where an environment is on its way to the team.
 */
export type LifecycleStatus =
  | 'saved'
  | 'building'
  | 'draft'
  | 'failed'
  | 'pending'
  | 'published'
  | 'rejected';

/**
 * A publish request's status.
 */
export type RequestStatus =
  | 'pending'
  | 'outdated'
  | 'publishing'
  | 'published'
  | 'rejected'
  | 'withdrawn';

/**
 * An environment's lifecycle: its status, a detail ("in use: v2", the
 * rejection's reason) and its latest publish request.
 */
export interface ILifecycle {
  status: LifecycleStatus;
  detail: string | null;
  request: {
    id: string;
    status: RequestStatus;
    detail: string | null;
    error: string | null;
    version: number;
  } | null;
}

/**
 * A publish request (GET requests).
 */
export interface IPublishRequest {
  id: string;
  name: string;
  kind: 'new' | 'update';
  requester: string;
  reason: string;
  created_at: string;
  version: number;
  lock_sha256?: string;
  published_version?: number | null;
  source?: { scope: Scope; name: string; version: number };
  status: RequestStatus;
  detail?: string | null;
  error?: string | null;
  dismissed?: boolean;
  decided_by?: string | null;
  decided_at?: string | null;
}

/**
 * One package change of a review's diff.
 */
export interface IRequestChange {
  name: string;
  kind: 'conda' | 'pip';
  version?: string;
  from?: string;
  to?: string;
  channel?: string | null;
}

/**
 * The changes of one kind (conda or pip).
 */
export interface IRequestChanges {
  added: IRequestChange[];
  removed: IRequestChange[];
  upgraded: IRequestChange[];
  downgraded: IRequestChange[];
  rebuilt: IRequestChange[];
}

/**
 * A policy check of a review.
 */
export interface IPolicyCheck {
  check: 'channels' | 'blocked_packages' | 'pip_direct';
  ok: boolean;
  items: string[];
  message: string;
  blocking: boolean;
}

/**
 * One event of the publishing audit log.
 */
export interface IAuditEvent {
  /**
   * The event's own id (its file name in the audit directory).
   */
  id?: string;
  event:
    | 'submitted'
    | 'withdrawn'
    | 'approved'
    | 'rejected'
    | 'published'
    | 'publish_failed'
    | 'outdated';
  at: string;
  who: string;
  account?: string;
  host?: string;
  request?: string;
  name?: string;
  requester?: string;
  /**
   * The draft (in the requester's store) the request came from.
   */
  draft?: string;
}

/**
 * A request for review (GET requests/{id}).
 */
export interface IPublishReview extends IPublishRequest {
  diff?: {
    from: { scope: Scope; name: string; version: number } | null;
    to: Record<string, any>;
    conda: IRequestChanges;
    pip: IRequestChanges;
  };
  checks?: IPolicyCheck[];
  size?: number | null;
  removed_versions?: Record<string, any>[];
  logs?: string[];
  events?: IAuditEvent[];
}
