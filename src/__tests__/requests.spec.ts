import type { Event } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { EnvManagerAPI } from '../api';
import { RequestsModel } from '../components/RequestsSection';
import { EnvManagerModel } from '../model';
import { EventSchemas } from '../tokens';
import { env, storesServer } from './fixtures';

class FakeEventStream extends Signal<unknown, Event.Emission> {
  constructor() {
    super({});
  }
}

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

describe('RequestsModel', () => {
  it('re-reads the requests, the published env and the draft a request came from', async () => {
    const server = storesServer(
      [env({ name: 'my-draft' }), env({ name: 'other' })],
      [env({ name: 'team', scope: 'shared' })]
    )
      .on('GET', 'environments/local/my-draft', () => ({
        json: env({ name: 'my-draft' })
      }))
      .on('GET', 'environments/shared/team', () => ({
        json: env({ name: 'team', scope: 'shared' })
      }))
      .on('GET', 'requests', () => ({ json: { requests: [], pending: 0 } }));
    const events = new FakeEventStream();
    const model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      events: events as unknown as Event.Stream,
      frontendVersion: '0.1.0',
      reloadDelayMs: 0
    });
    await model.connect();
    const requests = new RequestsModel(
      model,
      events as unknown as Event.Stream
    );
    server.calls.length = 0;
    events.emit({
      schema_id: EventSchemas.request,
      action: 'rejected',
      id: '20261206T050000-abcdef',
      name: 'team',
      requester: 'alice',
      draft: 'my-draft'
    } as unknown as Event.Emission);
    await flush();
    await flush();
    const paths = server.calls.map(c => `${c.method} ${c.path}`).sort();
    expect(paths).toEqual([
      'GET environments/local/my-draft',
      'GET environments/shared/team',
      'GET requests'
    ]);
    expect(requests.requests).toEqual([]);
    model.dispose();
  });
});
