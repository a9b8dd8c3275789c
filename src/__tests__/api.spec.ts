import { ApiError, EnvManagerAPI } from '../api';
import { ENV_ACTIONS } from '../tokens';
import { actions, build, env, READY_DENIED, serverInfo } from './fixtures';
import { MockEnvServer } from './mockServer';

describe('EnvManagerAPI', () => {
  let server: MockEnvServer;
  let api: EnvManagerAPI;

  beforeEach(() => {
    server = new MockEnvServer();
    api = new EnvManagerAPI(server.settings);
  });

  it('gets the server info', async () => {
    server.on('GET', 'info', () => ({ json: serverInfo() }));
    const info = await api.info();
    expect(info.version).toBe('0.1.0');
    expect(info.engine.name).toBe('py-rattler');
  });

  it('lists environments of one scope', async () => {
    server.on('GET', 'environments', ({ query }) => ({
      json: { environments: [env({ scope: query.get('scope') as 'shared' })] }
    }));
    const envs = await api.listEnvironments('shared');
    expect(envs).toHaveLength(1);
    expect(envs[0].scope).toBe('shared');
    expect(server.calls[0].query.get('scope')).toBe('shared');
  });

  it('asks for the compact list and gives each action its reason', async () => {
    const reasons = ['No build is running', 'Build it first: "now"'];
    const compact = (name: string) => {
      const view = env({ name }) as any;
      view.actions = Object.fromEntries(ENV_ACTIONS.map(a => [a, null]));
      view.actions.cancel = 0;
      view.actions.revert = 1;
      view.actions.adopt = { allowed: false, reason: 'as it was' }; // kept
      return view;
    };
    server.on('GET', 'environments', () => ({
      json: { reasons, environments: [compact('a'), compact('b')] }
    }));
    const envs = await api.listEnvironments('local');
    expect(server.calls[0].query.get('view')).toBe('compact');
    expect(server.calls[0].query.get('scope')).toBe('local');
    for (const listed of envs) {
      expect(listed.actions.build).toEqual({ allowed: true, reason: null });
      expect(listed.actions.cancel).toEqual({
        allowed: false,
        reason: reasons[0]
      });
      expect(listed.actions.revert).toEqual({
        allowed: false,
        reason: reasons[1]
      });
      expect(listed.actions.adopt).toEqual({
        allowed: false,
        reason: 'as it was'
      });
    }
    // One object per reason, shared (and frozen: nobody changes another's).
    expect(envs[0].actions.cancel).toBe(envs[1].actions.cancel);
    expect(Object.isFrozen(envs[0].actions.cancel)).toBe(true);

    server.on('GET', 'environments', () => ({
      json: { reasons: [], environments: [compact('c')] }
    }));
    await expect(api.listEnvironments('shared')).rejects.toThrow(
      "c's revert names reason 1"
    );
  });

  it('revalidates the list and reuses it while its ETag is the same', async () => {
    let etag = 'W/"one"';
    server.on('GET', 'environments', () => ({
      json: { environments: [env({ name: 'demo' })] },
      headers: { ETag: etag }
    }));
    const first = await api.listEnvironments('local');
    const second = await api.listEnvironments('local');
    expect(second).toBe(first); // not parsed again: the caller can skip its work
    expect(server.calls.map(call => call.cache)).toEqual([
      'no-cache',
      'no-cache'
    ]); // the browser sends If-None-Match; a 304 has no body
    expect(await api.listEnvironments('shared')).not.toBe(first); // per query
    etag = 'W/"two"';
    const third = await api.listEnvironments('local');
    expect(third).not.toBe(first);
    expect(third).toEqual(first);
  });

  it('sends the create body as JSON and returns the environment', async () => {
    server.on('POST', 'environments', ({ body }) => ({
      status: 201,
      json: env(body as object)
    }));
    const created = await api.createEnvironment({
      name: 'ml',
      conda: ['numpy', 'pandas>=2'],
      build: true
    });
    expect(created.name).toBe('ml');
    expect(server.calls[0].body).toEqual({
      name: 'ml',
      conda: ['numpy', 'pandas>=2'],
      build: true
    });
  });

  it('carries the message and field of a 400', async () => {
    server.on('POST', 'environments', () => ({
      status: 400,
      json: {
        message: "Invalid environment name 'Bad Name'",
        field: 'name',
        item: 'Bad Name'
      }
    }));
    const error = await api
      .createEnvironment({ name: 'Bad Name' })
      .catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(400);
    expect(error.message).toBe("Invalid environment name 'Bad Name'");
    expect(error.field).toBe('name');
    expect(error.item).toBe('Bad Name');
  });

  it('posts an environment.yml to import and carries its 409', async () => {
    server.on('POST', 'environments/import', ({ body }) =>
      (body as { name?: string }).name === 'taken'
        ? {
            status: 409,
            json: {
              message: "Environment 'taken' already exists",
              field: 'name',
              item: 'taken'
            }
          }
        : { status: 201, json: env({ name: 'imported' }) }
    );
    const yml = 'name: imported\ndependencies:\n  - alpha\n';
    const imported = await api.importEnvironment({
      environment_yml: yml,
      build: true
    });
    expect(imported.name).toBe('imported');
    expect(server.calls[0]).toMatchObject({
      method: 'POST',
      path: 'environments/import',
      body: { environment_yml: yml, build: true }
    });
    const error = await api
      .importEnvironment({ name: 'taken', environment_yml: yml })
      .catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(409);
    expect(error.message).toBe("Environment 'taken' already exists");
    expect(error.field).toBe('name');
  });

  it('reports a missing route as a 404 without field', async () => {
    const error = await api.info().catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(404);
    expect(error.field).toBeNull();
    expect(error.isMissingExtension).toBe(true);
  });

  it('reports a network failure as status 0', async () => {
    const settings = {
      ...server.settings,
      fetch: () => Promise.reject(new TypeError('Failed to fetch'))
    };
    const error = await new EnvManagerAPI(settings).info().catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/Cannot reach the server/);
  });

  it('encodes names in paths', async () => {
    server.on('DELETE', 'environments/local/a b', () => ({ status: 204 }));
    await api.deleteEnvironment({ scope: 'local', name: 'a b' });
    expect(server.calls[0]).toMatchObject({
      method: 'DELETE',
      path: 'environments/local/a b'
    });
  });

  it('reads logs with the offset protocol', async () => {
    server.on('GET', 'environments/local/demo/builds/3/log', ({ query }) => {
      const offset = Number(query.get('offset'));
      const log = 'solve\nlink\n';
      return {
        text: log.slice(offset),
        headers: { 'X-Log-Offset': String(log.length) }
      };
    });
    const first = await api.getBuildLog({ scope: 'local', name: 'demo' }, 3, 0);
    expect(first).toEqual({ text: 'solve\nlink\n', next: 11 });
    const second = await api.getBuildLog(
      { scope: 'local', name: 'demo' },
      3,
      first.next
    );
    expect(second).toEqual({ text: '', next: 11 });
  });

  it('falls back to the byte length when X-Log-Offset is missing', async () => {
    server.on('GET', 'environments/local/demo/builds/1/log', () => ({
      text: 'é\n'
    }));
    const chunk = await api.getBuildLog({ scope: 'local', name: 'demo' }, 1, 5);
    expect(chunk.next).toBe(5 + 3);
  });

  it('posts build, copy and revert bodies and reads their Location', async () => {
    server
      .on('POST', 'environments/local/demo/builds', () =>
        MockEnvServer.accepted('local', 'demo', build({ version: 3 }))
      )
      .on('POST', 'environments/local/demo/copy', ({ body }) => {
        const name = (body as { name: string }).name;
        return MockEnvServer.accepted(
          'shared',
          name,
          build({ version: 1, kind: 'copy', status: 'queued' }),
          { environment: env({ scope: 'shared', name }) }
        );
      })
      .on('POST', 'environments/local/demo/revert', () =>
        MockEnvServer.accepted(
          'local',
          'demo',
          build({ version: 4, status: 'queued', kind: 'revert' })
        )
      );
    const ref = { scope: 'local' as const, name: 'demo' };
    const started = await api.startBuild(ref);
    expect(started.build.version).toBe(3);
    expect(started.location).toBe(
      '/lab-base/env-manager/environments/local/demo/builds/3'
    );
    const copied = await api.copy(ref, 'shared', 'team-demo');
    expect(copied.environment.name).toBe('team-demo');
    expect(copied.build.kind).toBe('copy');
    expect(copied.location).toBe(
      '/lab-base/env-manager/environments/shared/team-demo/builds/1'
    );
    expect(server.calls[1].body).toEqual({ to: 'shared', name: 'team-demo' });
    const reverted = await api.revert(ref, 2);
    expect(reverted.build.version).toBe(4);
    expect(reverted.location).toMatch(/\/builds\/4$/);
    expect(server.calls[2].body).toEqual({ version: 2 });
  });

  it('cancels with POST .../cancel and returns the cancelled build', async () => {
    server
      .on('POST', 'environments/local/demo/builds/5/cancel', () => ({
        json: build({ version: 5, status: 'cancelled' })
      }))
      .on('DELETE', 'environments/local/demo/builds/5', () => ({
        status: 405,
        json: { message: 'Method Not Allowed' }
      }));
    const cancelled = await api.cancelBuild(
      { scope: 'local', name: 'demo' },
      5
    );
    expect(cancelled.status).toBe('cancelled');
    expect(server.calls.map(c => `${c.method} ${c.path}`)).toEqual([
      'POST environments/local/demo/builds/5/cancel'
    ]);
  });

  it('gives an environment its allowed actions with reasons', async () => {
    server.on('GET', 'environments/shared/team', () => ({
      json: env({
        scope: 'shared',
        name: 'team',
        actions: actions({
          build: 'The shared store is read-only for you',
          ...READY_DENIED
        })
      })
    }));
    const team = await api.getEnvironment({ scope: 'shared', name: 'team' });
    expect(team.actions.build).toEqual({
      allowed: false,
      reason: 'The shared store is read-only for you'
    });
    expect(team.actions.copy_local).toEqual({ allowed: true, reason: null });
    expect(Object.keys(team.actions).sort()).toEqual([...ENV_ACTIONS].sort());
  });

  it('exports with the file name of Content-Disposition', async () => {
    server.on('GET', 'environments/local/demo/export', ({ query }) => ({
      text: 'name: demo\n',
      headers: {
        'Content-Type': 'text/yaml',
        'Content-Disposition': `attachment; filename="demo-${query.get('format')}"`
      }
    }));
    const exported = await api.exportEnvironment(
      { scope: 'local', name: 'demo' },
      'lock'
    );
    expect(exported).toEqual({ text: 'name: demo\n', filename: 'demo-lock' });
  });
});
