import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type {
  ExportFormat,
  IActionState,
  IBuild,
  ICreateEnvRequest,
  IEnv,
  IEnvPatch,
  IEnvRef,
  IAuditEvent,
  IGcResult,
  IImportEnvRequest,
  IPinMetadata,
  IPinRequest,
  IPinResult,
  IPublishRequest,
  IPublishReview,
  IPackageDiff,
  IPackageList,
  ISearchReply,
  IFleetRow,
  IInstallAllRequest,
  IServerInfo,
  IWhichMatch,
  Scope
} from './tokens';

/**
 * The server extension's URL namespace.
 */
export const API_NAMESPACE = 'env-manager';

/**
 * An error from the REST API, carrying the server's message and, for
 * validation errors, the field (and item) it is about.
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field: string | null = null,
    readonly item: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /**
   * Whether the server could not be reached or the route does not exist.
   */
  get isMissingExtension(): boolean {
    return this.status === 0 || (this.status === 404 && this.field === null);
  }
}

/**
 * What {@link requestText} returns: the text with its headers.
 */
export interface ITextResponse {
  text: string;
  headers: Headers;
}

/**
 * Call the server extension.
 *
 * @param endPoint - path below `{base_url}env-manager/`, already URL-encoded
 * @param init - fetch options; a plain object body is sent as JSON
 * @param settings - server settings (defaults to the page's)
 * @returns the parsed JSON body, or `null` for an empty body (204)
 * @throws {ApiError} with the server's `message` and `field` on failure
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  return (await requestJSON<T>(endPoint, init, settings)).body;
}

/**
 * Like {@link requestAPI}, with the answer's headers (a 202 names the build
 * it started in `Location`).
 */
export async function requestJSON<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<{ body: T; headers: Headers }> {
  const response = await fetchAPI(endPoint, init, settings);
  const text = await response.text();
  if (!text) {
    return { body: null as T, headers: response.headers };
  }
  try {
    return { body: JSON.parse(text) as T, headers: response.headers };
  } catch (error) {
    throw new ApiError(
      `Invalid JSON from ${endPoint}: ${text.slice(0, 200)}`,
      response.status
    );
  }
}

/**
 * Like {@link requestAPI}, for text routes (logs, exports).
 */
export async function requestText(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<ITextResponse> {
  const response = await fetchAPI(endPoint, init, settings);
  return { text: await response.text(), headers: response.headers };
}

async function fetchAPI(
  endPoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(
      `Cannot reach the server: ${(error as Error).message ?? error}`,
      0
    );
  }
  if (!response.ok) {
    throw await errorFromResponse(response);
  }
  return response;
}

async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let body: { message?: unknown; field?: unknown; item?: unknown } = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: a proxy or tornado's default error page.
  }
  const message =
    typeof body.message === 'string' && body.message
      ? body.message
      : `${response.status} ${response.statusText || 'error'}`;
  return new ApiError(
    message,
    response.status,
    typeof body.field === 'string' ? body.field : null,
    typeof body.item === 'string' ? body.item : null
  );
}

function json(method: string, body?: unknown): RequestInit {
  return body === undefined
    ? { method }
    : {
        method,
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' }
      };
}

/**
 * A build the server accepted (202): the build and its URL (`Location`).
 */
export interface IAcceptedBuild {
  build: IBuild;
  /**
   * The build's URL from the answer's `Location` header (null if absent).
   */
  location: string | null;
}

function envPath(ref: IEnvRef, ...rest: (string | number)[]): string {
  return ['environments', ref.scope, ref.name, ...rest]
    .map(part => encodeURIComponent(String(part)))
    .join('/');
}

/**
 * Typed wrappers of the REST API, one per route.
 */
export class EnvManagerAPI {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  info(): Promise<IServerInfo> {
    return this._json<IServerInfo>('info');
  }

  /**
   * The environments of a scope (or both). The list is revalidated, not
   * refetched: the browser sends the ETag it has and a 304 costs no body; an
   * unchanged ETag returns the very array of the last call (not parsed again),
   * so a caller can tell that nothing changed by identity. It comes compact
   * (each reason once, see `expandActions`), and is returned as the full
   * views are.
   */
  async listEnvironments(scope?: Scope): Promise<IEnv[]> {
    const query = scope ? `scope=${encodeURIComponent(scope)}&` : '';
    const endPoint = `environments?${query}view=compact`;
    const response = await fetchAPI(
      endPoint,
      { cache: 'no-cache' },
      this.serverSettings
    );
    const etag = response.headers.get('ETag');
    const known = this._lists.get(endPoint);
    if (etag && known?.etag === etag) {
      return known.envs;
    }
    const text = await response.text();
    let list: ICompactList;
    try {
      list = JSON.parse(text) as ICompactList;
    } catch (error) {
      throw new ApiError(
        `Invalid JSON from ${endPoint}: ${text.slice(0, 200)}`,
        response.status
      );
    }
    const envs = expandActions(list);
    if (etag) {
      this._lists.set(endPoint, { etag, envs });
    }
    return envs;
  }

  createEnvironment(request: ICreateEnvRequest): Promise<IEnv> {
    return this._json<IEnv>('environments', json('POST', request));
  }

  importEnvironment(request: IImportEnvRequest): Promise<IEnv> {
    return this._json<IEnv>('environments/import', json('POST', request));
  }

  /**
   * Upload a bundle (a tar file made by `export --format bundle`): the server
   * checks every member, creates the environment and builds exactly its lock
   * with no network (202).
   */
  async importBundle(
    bundle: Blob,
    scope: Scope,
    name: string
  ): Promise<{ environment: IEnv; build: IBuild }> {
    const query = new URLSearchParams({ scope });
    if (name) {
      query.set('name', name);
    }
    const reply = await requestJSON<{ environment: IEnv; build: IBuild }>(
      `bundles?${query.toString()}`,
      {
        method: 'POST',
        body: bundle,
        headers: { 'Content-Type': 'application/x-tar' }
      },
      this.serverSettings
    );
    return reply.body;
  }

  getEnvironment(ref: IEnvRef): Promise<IEnv> {
    return this._json<IEnv>(envPath(ref));
  }

  updateEnvironment(ref: IEnvRef, patch: IEnvPatch): Promise<IEnv> {
    return this._json<IEnv>(envPath(ref), json('PATCH', patch));
  }

  async deleteEnvironment(ref: IEnvRef): Promise<void> {
    await this._json<null>(envPath(ref), json('DELETE'));
  }

  /**
   * Queue a build (202); the answer's `Location` names it.
   */
  startBuild(ref: IEnvRef): Promise<IAcceptedBuild> {
    return this._accepted(envPath(ref, 'builds'), json('POST'));
  }

  async listBuilds(ref: IEnvRef): Promise<IBuild[]> {
    const reply = await this._json<{ builds: IBuild[] }>(
      envPath(ref, 'builds')
    );
    return reply.builds;
  }

  getBuild(ref: IEnvRef, version: number): Promise<IBuild> {
    return this._json<IBuild>(envPath(ref, 'builds', version));
  }

  /**
   * Cancel a queued or running build; the server answers once the cancel
   * took effect, with the build.
   */
  cancelBuild(ref: IEnvRef, version: number): Promise<IBuild> {
    return this._json<IBuild>(
      envPath(ref, 'builds', version, 'cancel'),
      json('POST')
    );
  }

  /**
   * Read a build log from byte `offset`; `next` is the offset to ask for next.
   */
  async getBuildLog(
    ref: IEnvRef,
    version: number,
    offset = 0
  ): Promise<{ text: string; next: number }> {
    const reply = await requestText(
      `${envPath(ref, 'builds', version, 'log')}?offset=${offset}`,
      {},
      this.serverSettings
    );
    const header = reply.headers.get('X-Log-Offset');
    const next = header !== null && header !== '' ? Number(header) : NaN;
    return {
      text: reply.text,
      next: Number.isFinite(next) ? next : offset + byteLength(reply.text)
    };
  }

  activate(ref: IEnvRef): Promise<IEnv> {
    return this._json<IEnv>(envPath(ref, 'activate'), json('POST'));
  }

  deactivate(ref: IEnvRef): Promise<IEnv> {
    return this._json<IEnv>(envPath(ref, 'deactivate'), json('POST'));
  }

  /**
   * Copy the version in use to a store (202): the new environment and the
   * build making it, named by `Location`.
   */
  async copy(
    ref: IEnvRef,
    to: Scope,
    name?: string
  ): Promise<IAcceptedBuild & { environment: IEnv }> {
    const body: { to: Scope; name?: string } = { to };
    if (name) {
      body.name = name;
    }
    const reply = await requestJSON<{ environment: IEnv; build: IBuild }>(
      envPath(ref, 'copy'),
      json('POST', body),
      this.serverSettings
    );
    return {
      environment: reply.body.environment,
      build: reply.body.build,
      location: reply.headers.get('Location')
    };
  }

  /**
   * Make a new version from an earlier one's lock (202).
   */
  revert(ref: IEnvRef, version: number): Promise<IAcceptedBuild> {
    return this._accepted(envPath(ref, 'revert'), json('POST', { version }));
  }

  /**
   * Export an environment; `filename` comes from the server's
   * Content-Disposition, with a fallback.
   */
  async exportEnvironment(
    ref: IEnvRef,
    format: ExportFormat
  ): Promise<{ text: string; filename: string }> {
    const reply = await requestText(
      `${envPath(ref, 'export')}?format=${encodeURIComponent(format)}`,
      {},
      this.serverSettings
    );
    const disposition = reply.headers.get('Content-Disposition') ?? '';
    const match = /filename="?([^";]+)"?/.exec(disposition);
    const fallback =
      format === 'environment.yml'
        ? `${ref.name}-environment.yml`
        : `${ref.name}-${format}.txt`;
    return { text: reply.text, filename: match ? match[1] : fallback };
  }

  /**
   * The bundle of the version in use: a tar file with its spec, locks, every
   * package archive and wheel, and their checksums.
   */
  async exportBundle(ref: IEnvRef): Promise<{ blob: Blob; filename: string }> {
    const url = URLExt.join(
      this.serverSettings.baseUrl,
      API_NAMESPACE,
      `${envPath(ref, 'export')}?format=bundle`
    );
    const response = await ServerConnection.makeRequest(
      url,
      {},
      this.serverSettings
    );
    if (!response.ok) {
      throw await errorFromResponse(response);
    }
    return { blob: await response.blob(), filename: `${ref.name}.tar` };
  }

  adopt(ref: IEnvRef): Promise<IEnv> {
    return this._json<IEnv>(envPath(ref, 'adopt'), json('POST'));
  }

  /**
   * Pin a notebook to a version (the one in use by default): the server
   * makes sure the version's kernelspec exists (it may first make the
   * version's directory from its lock) and records the pin.
   */
  pin(request: IPinRequest): Promise<IPinResult> {
    return this._json<IPinResult>('pins', json('POST', request));
  }

  /**
   * Check a notebook's pin (its `metadata.envmgr`) and make sure its kernel
   * can start; the error's message names what is wrong.
   */
  checkPin(pin: IPinMetadata): Promise<IPinResult> {
    return this._json<IPinResult>('pins/check', json('POST', pin));
  }

  /**
   * Remove the directories of old versions retention does not keep
   * (`dryRun`: only say which).
   */
  gc(dryRun: boolean): Promise<IGcResult> {
    return this._json<IGcResult>('gc', json('POST', { dry_run: dryRun }));
  }

  /**
   * The packages of a version (default: the one in use), from its lock.
   */
  packages(ref: IEnvRef, version?: number | null): Promise<IPackageList> {
    const query = version ? `?version=${encodeURIComponent(version)}` : '';
    return this._json<IPackageList>(`${envPath(ref, 'packages')}${query}`);
  }

  /**
   * What changed from version `from` of `ref` to version `to` (default: the
   * one in use) of `ref`, or of `other` when given.
   */
  diff(
    ref: IEnvRef,
    from: number,
    to?: number | null,
    other?: IEnvRef | null
  ): Promise<IPackageDiff> {
    const params = new URLSearchParams({ from: String(from) });
    if (to) {
      params.set('to', String(to));
    }
    if (other) {
      params.set('other', `${other.scope}/${other.name}`);
    }
    return this._json<IPackageDiff>(`${envPath(ref, 'diff')}?${params}`);
  }

  /**
   * Packages whose names start with `query`, in the channels of `ref` (else
   * the configured ones).
   */
  search(query: string, ref?: IEnvRef | null): Promise<ISearchReply> {
    const params = new URLSearchParams({ q: query });
    if (ref) {
      params.set('scope', ref.scope);
      params.set('name', ref.name);
    }
    return this._json<ISearchReply>(`packages/search?${params}`);
  }

  /**
   * Add packages to the spec (or remove them, `remove`) and build it (202);
   * the spec changes only if the build succeeds.
   */
  install(
    ref: IEnvRef,
    packages: string[],
    options: { pip?: boolean; remove?: boolean } = {}
  ): Promise<IAcceptedBuild> {
    const route = options.remove ? 'uninstall' : 'install';
    return this._accepted(
      envPath(ref, route),
      json('POST', { packages, pip: !!options.pip })
    );
  }

  /**
   * Install packages into many environments (202): one row per environment.
   */
  async installAll(request: IInstallAllRequest): Promise<IFleetRow[]> {
    const reply = await this._json<{ results: IFleetRow[] }>(
      'install-all',
      json('POST', request)
    );
    return reply.results;
  }

  /**
   * The environments whose version in use holds a package matching `spec`.
   */
  async which(spec: string, scope?: Scope): Promise<IWhichMatch[]> {
    const query = new URLSearchParams({ spec });
    if (scope) {
      query.set('scope', scope);
    }
    const reply = await this._json<{ matches: IWhichMatch[] }>(
      `which?${query.toString()}`
    );
    return reply.matches;
  }

  /**
   * Upload a private wheel and build it into the environment (202).
   */
  uploadWheel(
    ref: IEnvRef,
    file: Blob,
    filename: string
  ): Promise<IAcceptedBuild> {
    return this._accepted(
      `${envPath(ref, 'wheels')}?filename=${encodeURIComponent(filename)}`,
      {
        method: 'POST',
        body: file,
        headers: { 'Content-Type': 'application/octet-stream' }
      }
    );
  }

  // -- publishing with approval ---------------------------------------------

  listRequests(): Promise<{ requests: IPublishRequest[]; pending: number }> {
    return this._json('requests');
  }

  getRequest(id: string): Promise<IPublishReview> {
    return this._json(`requests/${encodeURIComponent(id)}`);
  }

  /**
   * Submit a draft's latest successful version for publishing.
   */
  submitRequest(ref: IEnvRef, reason: string): Promise<IPublishReview> {
    return this._json(
      'requests',
      json('POST', { scope: ref.scope, name: ref.name, reason })
    );
  }

  /**
   * Approve (202 while it publishes), reject (a reason) or withdraw.
   */
  decideRequest(
    id: string,
    action: 'approve' | 'reject' | 'withdraw',
    reason?: string
  ): Promise<IPublishReview> {
    return this._json(
      `requests/${encodeURIComponent(id)}/${action}`,
      json('POST', reason === undefined ? {} : { reason })
    );
  }

  async audit(request?: string): Promise<IAuditEvent[]> {
    const query = request ? `?request=${encodeURIComponent(request)}` : '';
    return (await this._json<{ events: IAuditEvent[] }>(`audit${query}`))
      .events;
  }

  private async _accepted(
    endPoint: string,
    init: RequestInit
  ): Promise<IAcceptedBuild> {
    const reply = await requestJSON<{ build: IBuild }>(
      endPoint,
      init,
      this.serverSettings
    );
    return {
      build: reply.body.build,
      location: reply.headers.get('Location')
    };
  }

  private _json<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
    return requestAPI<T>(endPoint, init, this.serverSettings);
  }

  private _lists = new Map<string, { etag: string; envs: IEnv[] }>();
}

/**
 * `GET environments?view=compact`: each action of an environment is null
 * (allowed) or the index of its reason in `reasons`.
 */
interface ICompactList {
  reasons?: string[];
  environments: IEnv[];
}

const ALLOWED: IActionState = Object.freeze({ allowed: true, reason: null });

/**
 * The environments of a compact list as full views: every action as
 * `{allowed, reason}` (one frozen object per reason, shared by the
 * environments). An action already in that form is kept.
 */
export function expandActions(list: ICompactList): IEnv[] {
  const denied = (list.reasons ?? []).map(reason =>
    Object.freeze({ allowed: false, reason })
  );
  for (const env of list.environments) {
    const actions = env.actions as unknown as Record<
      string,
      IActionState | number | null
    >;
    // for...in, not Object.entries: no array per environment (a third of the
    // time of a list of thousands).
    for (const action in actions) {
      const state = actions[action];
      if (state === null) {
        actions[action] = ALLOWED;
      } else if (typeof state === 'number') {
        const reason = denied[state];
        if (!reason) {
          throw new Error(
            `Invalid list: ${env.name}'s ${action} names reason ${state}, which it does not have`
          );
        }
        actions[action] = reason;
      }
    }
  }
  return list.environments;
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}
