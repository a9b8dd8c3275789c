import { nullTranslator } from '@jupyterlab/translation';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { EnvManagerAPI } from '../api';
import { ImportFormBody, isBundle } from '../components/ImportForm';
import { EnvManagerModel } from '../model';
import { build, env, serverInfo, until } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

describe('Importing a bundle from the panel', () => {
  let reply: MockEnvServer.IReply;
  let server: MockEnvServer;
  let model: EnvManagerModel;
  let body: ImportFormBody;

  beforeEach(async () => {
    server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo() }))
      .on('GET', 'environments', () => ({ json: { environments: [] } }))
      .on('POST', 'bundles', () => reply);
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    await model.connect();
    body = new ImportFormBody({
      values: { scope: 'local', name: '', environment_yml: '', file_name: '' },
      shared: 'writable',
      trans,
      submit: async values => {
        const { env: created } = await model.importBundle(
          body.bundle!,
          values.scope,
          values.name.trim()
        );
        return created;
      }
    });
    Widget.attach(body, document.body);
  });

  afterEach(() => {
    body.dispose();
    model.dispose();
  });

  it('recognises a bundle by its name', () => {
    expect(isBundle({ name: 'analysis.tar' })).toBe(true);
    expect(isBundle({ name: 'environment.yml' })).toBe(false);
  });

  it('uploads the tar file and shows the environment building', async () => {
    reply = {
      status: 202,
      json: {
        environment: env({ name: 'moved', status: 'building' }),
        build: build({ status: 'queued' })
      }
    };
    body.bundle = new File(['tar bytes'], 'analysis.tar');
    body.setValues({ name: 'moved' });
    MessageLoop.sendMessage(body, Widget.Msg.UpdateRequest);
    await until(
      () => !!body.node.querySelector('[data-bundle="analysis.tar"]')
    );
    expect(body.node.querySelector('textarea')).toBeNull();
    expect(await body.submit(true)).toBe(true);
    const call = server.calls[server.calls.length - 1];
    expect(call).toMatchObject({
      method: 'POST',
      path: 'bundles',
      body: 'tar bytes'
    });
    expect(call.query.get('name')).toBe('moved');
    expect(call.query.get('scope')).toBe('local');
    expect(model.get({ scope: 'local', name: 'moved' })).toBeDefined();
  });

  it('shows a refused bundle beside the file field', async () => {
    reply = {
      status: 400,
      json: {
        message:
          'The bundle is damaged (wrong checksum: conda/a.tar.bz2): nothing was created',
        field: 'bundle'
      }
    };
    body.bundle = new File(['x'], 'bad.tar');
    expect(await body.submit(true)).toBe(false);
    expect(body.errors.bundle).toContain('wrong checksum: conda/a.tar.bz2');
    MessageLoop.sendMessage(body, Widget.Msg.UpdateRequest);
    await until(
      () =>
        !!body.node.querySelector(
          '.jp-EnvManager-FieldError[data-field="bundle"]'
        )
    );
  });
});
