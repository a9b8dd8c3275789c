import type { Event } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { EnvManagerAPI } from '../api';
import { EnvManagerModel } from '../model';
import { EventSchemas, IBuildEvent, IEnv } from '../tokens';
import { build, env, serverInfo } from './fixtures';
import { MockEnvServer } from './mockServer';

/**
 * A stand-in for `app.serviceManager.events.stream`.
 */
class FakeEventStream extends Signal<unknown, Event.Emission> {
  constructor() {
    super({});
  }
}

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

describe('EnvManagerModel', () => {
  let server: MockEnvServer;
  let events: FakeEventStream;
  let model: EnvManagerModel;
  let local: IEnv[];

  beforeEach(() => {
    local = [
      env({ name: 'demo' }),
      env({ name: 'old', display_name: 'Old', managed: false, kernel: null })
    ];
    server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo() }))
      .on('GET', 'environments', ({ query }) => ({
        json: {
          environments:
            query.get('scope') === 'shared'
              ? [env({ name: 'team', scope: 'shared' })]
              : local
        }
      }));
    events = new FakeEventStream();
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      events: events as unknown as Event.Stream,
      frontendVersion: '0.1.0',
      reloadDelayMs: 0,
      kernelsDelayMs: 20
    });
  });

  afterEach(() => model.dispose());

  it('connects, checks the version and lists both stores', async () => {
    const changed = jest.fn();
    model.changed.connect(changed);
    await model.connect();
    expect(model.connection).toBe('ready');
    expect(model.info?.version).toBe('0.1.0');
    expect(model.environments('local').map(e => e.name)).toEqual([
      'demo',
      'old'
    ]);
    expect(model.environments('shared').map(e => e.name)).toEqual(['team']);
    expect(changed).toHaveBeenCalled();
  });

  it('keeps its environments while the list has the same ETag', async () => {
    let etag = 'W/"one"';
    server.on('GET', 'environments', ({ query }) => ({
      json: {
        environments:
          query.get('scope') === 'shared'
            ? [env({ name: 'team', scope: 'shared' })]
            : [env({ name: 'demo' })]
      },
      headers: { ETag: `${etag}-${query.get('scope')}` }
    }));
    await model.connect();
    const demo = model.get({ scope: 'local', name: 'demo' });
    await model.refresh();
    expect(model.get({ scope: 'local', name: 'demo' })).toBe(demo);
    // An environment changed here (an event's reload) is not the server's
    // list any more: the next refresh takes the list again.
    server.on('GET', 'environments/local/demo', () => ({
      json: env({ name: 'demo', description: 'reloaded' })
    }));
    await model.reload({ scope: 'local', name: 'demo' });
    expect(model.get({ scope: 'local', name: 'demo' })?.description).toBe(
      'reloaded'
    );
    await model.refresh();
    expect(model.get({ scope: 'local', name: 'demo' })).toBe(demo);
    etag = 'W/"two"';
    await model.refresh();
    expect(model.get({ scope: 'local', name: 'demo' })).not.toBe(demo);
  });

  it('does not list the shared store when none is configured', async () => {
    server.on('GET', 'info', () => ({
      json: serverInfo({ shared_root: null })
    }));
    await model.connect();
    expect(model.hasSharedStore).toBe(false);
    expect(model.environments('shared')).toEqual([]);
    expect(
      server.calls.filter(c => c.query.get('scope') === 'shared')
    ).toHaveLength(0);
  });

  it.each([
    [{ shared_access: 'write' as const }, 'writable', true],
    [{ shared_access: 'read' as const }, 'read-only', false],
    [{ shared_access: 'none' as const }, 'read-only', false],
    [{ shared_root: null, shared_access: null }, 'unconfigured', false]
  ])(
    'tells from info %j whether the shared store is writable',
    async (overrides, state, writable) => {
      server.on('GET', 'info', () => ({ json: serverInfo(overrides) }));
      await model.connect();
      expect(model.sharedState).toBe(state);
      expect(model.canWriteShared).toBe(writable);
    }
  );

  it('does not list a shared store the user may not read', async () => {
    server.on('GET', 'info', () => ({
      json: serverInfo({ shared_access: 'none' })
    }));
    await model.connect();
    expect(model.hasSharedStore).toBe(true);
    expect(model.listError('shared')).toBeNull();
    expect(
      server.calls.filter(c => c.query.get('scope') === 'shared')
    ).toHaveLength(0);
    expect(model.environments('local').map(e => e.name)).toEqual([
      'demo',
      'old'
    ]);
  });

  it('says the server extension is missing on a 404', async () => {
    server = new MockEnvServer();
    model = new EnvManagerModel({ api: new EnvManagerAPI(server.settings) });
    await model.connect();
    expect(model.connection).toBe('missing');
    expect(model.connectionError).toMatch(/404/);
  });

  it('flags a version mismatch and lists nothing', async () => {
    server.on('GET', 'info', () => ({
      json: serverInfo({ version: '0.2.0' })
    }));
    await model.connect();
    expect(model.connection).toBe('version-mismatch');
    expect(server.calls.map(c => c.path)).toEqual(['info']);
  });

  it('reports a server error as an error', async () => {
    server.on('GET', 'info', () => ({
      status: 500,
      json: { message: 'boom' }
    }));
    await model.connect();
    expect(model.connection).toBe('error');
    expect(model.connectionError).toBe('boom');
  });

  it('keeps a listing error per scope', async () => {
    server.on('GET', 'environments', ({ query }) =>
      query.get('scope') === 'shared'
        ? { status: 400, json: { message: 'shared store unreachable' } }
        : { json: { environments: local } }
    );
    await model.connect();
    expect(model.listError('shared')).toBe('shared store unreachable');
    expect(model.listError('local')).toBeNull();
    expect(model.environments('local')).toHaveLength(2);
  });

  it('filters on name, display name and status', async () => {
    await model.connect();
    model.filter = 'DEMO';
    expect(model.filtered('local').map(e => e.name)).toEqual(['demo']);
    model.filter = 'ready old';
    expect(model.filtered('local').map(e => e.name)).toEqual(['old']);
  });

  it('reloads an environment on an environment event', async () => {
    await model.connect();
    server.on('GET', 'environments/local/fresh', () => ({
      json: env({ name: 'fresh' })
    }));
    events.emit({
      schema_id: EventSchemas.environment,
      action: 'created',
      scope: 'local',
      name: 'fresh'
    });
    await new Promise(resolve => setTimeout(resolve, 20));
    expect(model.get({ scope: 'local', name: 'fresh' })?.name).toBe('fresh');
    events.emit({
      schema_id: EventSchemas.environment,
      action: 'deleted',
      scope: 'local',
      name: 'fresh'
    });
    expect(model.get({ scope: 'local', name: 'fresh' })).toBeUndefined();
  });

  it('ignores events of other schemas', async () => {
    await model.connect();
    const before = server.calls.length;
    events.emit({
      schema_id: 'https://example.org/other/v1',
      scope: 'local',
      name: 'demo'
    });
    await flush();
    expect(server.calls.length).toBe(before);
  });

  it('follows build events without refreshing kernels (kernel events do)', async () => {
    await model.connect();
    const builds: IBuildEvent[] = [];
    const kernels = jest.fn();
    model.buildChanged.connect((_, event) => builds.push(event));
    model.kernelsChanged.connect(kernels);
    server.on('GET', 'environments/local/demo', () => ({
      json: env({
        name: 'demo',
        version: 2,
        latest_build: build({ version: 2 })
      })
    }));
    const base = {
      schema_id: EventSchemas.build,
      scope: 'local',
      name: 'demo',
      version: 2
    };
    events.emit({
      ...base,
      action: 'phase',
      status: 'running',
      phase: 'download'
    });
    expect(model.get({ scope: 'local', name: 'demo' })).toMatchObject({
      status: 'building',
      phase: 'download'
    });
    events.emit({
      ...base,
      action: 'finished',
      status: 'succeeded',
      phase: null
    });
    await new Promise(resolve => setTimeout(resolve, 60));
    expect(builds.map(b => b.action)).toEqual(['phase', 'finished']);
    // The server announces the build's kernelspec with a kernel event: only that refreshes.
    expect(kernels).not.toHaveBeenCalled();
    expect(model.get({ scope: 'local', name: 'demo' })).toMatchObject({
      status: 'ready',
      version: 2
    });
  });

  it('refreshes kernels once for a burst of kernel events', async () => {
    await model.connect();
    const kernels = jest.fn();
    model.kernelsChanged.connect(kernels);
    server.on('GET', 'environments/local/demo', () => ({
      json: env({ name: 'demo' })
    }));
    // A server's start-up sync or many builds ending: hundreds of kernel events.
    for (let i = 0; i < 300; i++) {
      events.emit({
        schema_id: EventSchemas.kernel,
        action: 'activated',
        scope: 'local',
        name: 'demo',
        kernel_name: `envmgr-env${i}`
      });
      events.emit({
        schema_id: EventSchemas.build,
        action: 'phase',
        scope: 'local',
        name: 'demo',
        version: 1,
        status: 'running',
        phase: 'link'
      });
    }
    expect(kernels).not.toHaveBeenCalled();
    await new Promise(resolve => setTimeout(resolve, 60));
    expect(kernels).toHaveBeenCalledTimes(1);
    // A later event is a later refresh.
    events.emit({
      schema_id: EventSchemas.kernel,
      action: 'deactivated',
      scope: 'local',
      name: 'demo',
      kernel_name: 'envmgr-demo'
    });
    await new Promise(resolve => setTimeout(resolve, 60));
    expect(kernels).toHaveBeenCalledTimes(2);
  });

  it('refreshes kernels after (de)activation', async () => {
    await model.connect();
    const kernels = jest.fn();
    model.kernelsChanged.connect(kernels);
    server.on('POST', 'environments/local/old/activate', () => ({
      json: env({
        name: 'old',
        managed: false,
        kernel: { name: 'envmgr-old', display_name: 'old', active: true }
      })
    }));
    const updated = await model.activate({ scope: 'local', name: 'old' });
    expect(updated.kernel?.active).toBe(true);
    expect(model.get({ scope: 'local', name: 'old' })?.kernel?.active).toBe(
      true
    );
    expect(kernels).toHaveBeenCalledTimes(1);
  });

  it('marks an environment building when a build starts', async () => {
    await model.connect();
    server.on('POST', 'environments/local/demo/builds', () => ({
      status: 202,
      json: {
        build: build({ version: 2, status: 'queued', finished_at: null })
      }
    }));
    const started = await model.build({ scope: 'local', name: 'demo' });
    expect(started.version).toBe(2);
    expect(model.get({ scope: 'local', name: 'demo' })).toMatchObject({
      status: 'building',
      latest_build: { version: 2, status: 'queued' }
    });
  });

  it('adds created environments and removes deleted ones', async () => {
    await model.connect();
    server
      .on('POST', 'environments', ({ body }) => ({
        status: 201,
        json: env({ ...(body as object), status: 'saved', version: null })
      }))
      .on('DELETE', 'environments/local/ml', () => ({ status: 204 }));
    const created = await model.create({ name: 'ml', conda: ['numpy'] });
    expect(created.status).toBe('saved');
    expect(model.get({ scope: 'local', name: 'ml' })).toBeDefined();
    await model.remove({ scope: 'local', name: 'ml' });
    expect(model.get({ scope: 'local', name: 'ml' })).toBeUndefined();
  });

  it('adds imported environments to their store', async () => {
    await model.connect();
    server.on('POST', 'environments/import', () => ({
      status: 201,
      json: env({ name: 'imported', scope: 'shared', status: 'saved' })
    }));
    const imported = await model.importYaml({
      scope: 'shared',
      environment_yml: 'name: imported\n'
    });
    expect(imported.name).toBe('imported');
    expect(model.get({ scope: 'shared', name: 'imported' })).toBe(imported);
    expect(model.environments('shared').map(e => e.name)).toEqual([
      'imported',
      'team'
    ]);
  });

  it('propagates validation errors with their field', async () => {
    await model.connect();
    server.on('POST', 'environments', () => ({
      status: 400,
      json: { message: 'Unknown package spec', field: 'conda', item: 'nump y' }
    }));
    await expect(
      model.create({ name: 'ml', conda: ['nump y'] })
    ).rejects.toMatchObject({
      status: 400,
      field: 'conda',
      message: 'Unknown package spec'
    });
  });

  it('emits selection changes', async () => {
    const selections: unknown[] = [];
    model.selectionChanged.connect((_, ref) => selections.push(ref));
    model.select({ scope: 'shared', name: 'team' });
    model.select(null);
    expect(selections).toEqual([{ scope: 'shared', name: 'team' }, null]);
  });
});
