import { ENV_ACTIONS } from '../tokens';
import { MockEnvServer } from './mockServer';
import type {
  EnvAction,
  EnvActions,
  IBuild,
  IEnv,
  IServerInfo
} from '../tokens';

/**
 * Sample payloads shaped like the server's.
 */
export function serverInfo(overrides: Partial<IServerInfo> = {}): IServerInfo {
  return {
    version: '0.1.0',
    user: 'alice',
    local_root: '/home/alice/.conda/envs',
    shared_root: '/shared/envs',
    shared_access: 'write',
    channels: ['conda-forge'],
    engine: { name: 'py-rattler', version: '0.28.0' },
    ...overrides
  };
}

export function build(overrides: Partial<IBuild> = {}): IBuild {
  return {
    version: 1,
    status: 'succeeded',
    phase: null,
    started_at: '2025-01-01T10:00:00Z',
    finished_at: '2025-01-01T10:01:00Z',
    error: null,
    kind: 'build',
    ...overrides
  };
}

/**
 * The `actions` of an environment view: every action allowed except those
 * given, with the server's reason.
 */
export function actions(
  denied: Partial<Record<EnvAction, string>> = {}
): EnvActions {
  return Object.fromEntries(
    ENV_ACTIONS.map(action => [
      action,
      denied[action] === undefined
        ? { allowed: true, reason: null }
        : { allowed: false, reason: denied[action]! }
    ])
  ) as EnvActions;
}

/**
 * What the server denies a ready environment with an active kernel.
 */
export const READY_DENIED: Partial<Record<EnvAction, string>> = {
  cancel: 'No build is running',
  adopt: 'It is already managed',
  activate: 'Its kernel is already active'
};

export function env(overrides: Partial<IEnv> = {}): IEnv {
  return {
    name: 'demo',
    scope: 'local',
    display_name: 'Demo',
    description: '',
    status: 'ready',
    version: 1,
    prefix: '/home/alice/.conda/envs/demo',
    spec: {
      python: '3.11',
      conda: ['numpy'],
      pip: [],
      channels: [],
      base: null
    },
    kernel: { name: 'envmgr-demo', display_name: 'Demo', active: true },
    python_version: '3.11.7',
    packages: 12,
    created_at: '2025-01-01T09:00:00Z',
    updated_at: '2025-01-01T10:01:00Z',
    managed: true,
    phase: null,
    latest_build: build(),
    actions: actions(READY_DENIED),
    materialized: [1],
    pinned: [],
    disk_bytes: 1048576,
    ...overrides
  };
}

/**
 * Wait for the event loop (and the mock server) a little.
 */
export const wait = (ms: number): Promise<void> =>
  new Promise(resolve => setTimeout(resolve, ms));

/**
 * Resolve once ``check()`` holds; fail after ``timeoutMs``.
 */
export async function until(
  check: () => boolean,
  timeoutMs = 2000
): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) {
      throw new Error('timed out');
    }
    await wait(5);
  }
}

/**
 * A mock server answering GET info and GET environments with these stores'
 * environments (add routes with `.on`).
 */
export function storesServer(
  local: IEnv[],
  shared: IEnv[] = [],
  info: () => IServerInfo = () => serverInfo()
): MockEnvServer {
  return new MockEnvServer()
    .on('GET', 'info', () => ({ json: info() }))
    .on('GET', 'environments', ({ query }) => ({
      json: { environments: query.get('scope') === 'shared' ? shared : local }
    }));
}
