import { nullTranslator } from '@jupyterlab/translation';
import type { Event } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { EnvManagerAPI } from '../api';
import { EnvManagerModel } from '../model';
import { EventSchemas } from '../tokens';
import type { BuildPhase } from '../tokens';
import { LogViewer } from '../widgets/LogViewer';
import { build, until, wait } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

describe('LogViewer', () => {
  let server: MockEnvServer;
  let log: string;
  let status: 'running' | 'succeeded';
  let phase: BuildPhase | null;
  let offsets: number[];

  beforeEach(() => {
    log = 'solving\n';
    status = 'running';
    phase = 'solve';
    offsets = [];
    server = new MockEnvServer()
      .on('GET', 'environments/local/demo/builds', () => ({
        json: {
          builds: [build({ version: 1 }), build({ version: 2, status, phase })]
        }
      }))
      .on('GET', 'environments/local/demo/builds/2', () => ({
        json: build({
          version: 2,
          status,
          phase,
          finished_at: status === 'running' ? null : 'not a date'
        })
      }))
      .on('GET', 'environments/local/demo/builds/2/log', ({ query }) => {
        const offset = Number(query.get('offset'));
        offsets.push(offset);
        return {
          text: log.slice(offset),
          headers: { 'X-Log-Offset': String(log.length) }
        };
      });
  });

  it('follows a running build from the last offset and stops when it ends', async () => {
    const events = new Signal<unknown, Event.Emission>({});
    const model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      events: events as unknown as Event.Stream
    });
    const viewer = new LogViewer({
      model,
      ref: { scope: 'local', name: 'demo' },
      trans,
      pollIntervalMs: 10
    });
    await until(() => viewer.text === 'solving\n');
    expect(viewer.build?.version).toBe(2);
    expect(viewer.isFollowing).toBe(true);
    expect(viewer.node.querySelector('.jp-mod-active')?.textContent).toBe(
      'solve'
    );

    log += 'linking\n';
    phase = 'link';
    await until(() => viewer.text === 'solving\nlinking\n');
    // Each read after the first asked for the bytes after those it had.
    expect(offsets.filter(o => o > 0).every(o => o === 8 || o === 16)).toBe(
      true
    );

    log += 'done\n';
    status = 'succeeded';
    phase = null;
    events.emit({
      schema_id: EventSchemas.build,
      action: 'finished',
      scope: 'local',
      name: 'demo',
      version: 2,
      status: 'succeeded',
      phase: null
    });
    await until(() => !viewer.isFollowing && viewer.text.endsWith('done\n'));
    const reads = offsets.length;
    await wait(50);
    expect(offsets.length).toBe(reads);
    expect(
      viewer.node.querySelectorAll('.jp-EnvManager-Phase.jp-mod-done')
    ).toHaveLength(6);
    viewer.dispose();
    model.dispose();
  });

  it('shows a finished build once, without polling', async () => {
    status = 'succeeded';
    phase = null;
    log = 'all good\n';
    const model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings)
    });
    const viewer = new LogViewer({
      model,
      ref: { scope: 'local', name: 'demo' },
      version: 2,
      trans,
      pollIntervalMs: 10
    });
    await until(() => viewer.text === 'all good\n');
    await wait(50);
    expect(viewer.isFollowing).toBe(false);
    expect(offsets).toEqual([0, 9]);
    viewer.dispose();
  });
});
