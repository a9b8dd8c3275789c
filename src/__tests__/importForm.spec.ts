import { nullTranslator } from '@jupyterlab/translation';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { EnvManagerAPI } from '../api';
import { EnvFormBody } from '../components/EnvForm';
import type { FormBody } from '../components/Form';
import {
  IImportFormValues,
  ImportFormBody,
  importRequest,
  ymlName
} from '../components/ImportForm';
import { EnvManagerModel } from '../model';
import { build, env, serverInfo, until } from './fixtures';
import { MockEnvServer } from './mockServer';

const trans = nullTranslator.load('jupyter_env_manager');

/**
 * Render a form body now and wait until `selector` matches in it.
 */
async function rendered<V extends Record<keyof V, string>>(
  body: FormBody<V>,
  selector: string
): Promise<HTMLElement> {
  MessageLoop.sendMessage(body, Widget.Msg.UpdateRequest);
  await until(() => !!body.node.querySelector(selector));
  return body.node.querySelector<HTMLElement>(selector)!;
}

const YML = 'name: imported # from the file\ndependencies:\n  - alpha\n';

describe('ymlName', () => {
  it('reads the top-level name, without quotes or comment', () => {
    expect(ymlName(YML)).toBe('imported');
    expect(ymlName('channels: []\nname: "quoted"\n')).toBe('quoted');
    expect(ymlName("name: 'single'")).toBe('single');
  });

  it('is empty without a top-level name', () => {
    expect(ymlName('dependencies:\n  - pip:\n    - name\n')).toBe('');
    expect(ymlName('dependencies:\n  name: nested\n')).toBe('');
    expect(ymlName('')).toBe('');
  });
});

describe('importRequest', () => {
  const values: IImportFormValues = {
    scope: 'shared',
    name: '  ',
    environment_yml: YML,
    file_name: ''
  };

  it('leaves the name to the file when the field is empty', () => {
    expect(importRequest(values, false)).toEqual({
      scope: 'shared',
      environment_yml: YML,
      build: false
    });
  });

  it('sends a given name, trimmed, and the build flag', () => {
    expect(importRequest({ ...values, name: ' other ' }, true)).toEqual({
      scope: 'shared',
      name: 'other',
      environment_yml: YML,
      build: true
    });
  });
});

describe('ImportFormBody', () => {
  let server: MockEnvServer;
  let model: EnvManagerModel;
  let body: ImportFormBody;
  let reply: MockEnvServer.IReply;

  beforeEach(async () => {
    reply = { status: 201, json: env({ name: 'imported' }) };
    server = new MockEnvServer()
      .on('GET', 'info', () => ({ json: serverInfo({ shared_root: null }) }))
      .on('GET', 'environments', () => ({ json: { environments: [] } }))
      .on('POST', 'environments/import', () => reply);
    model = new EnvManagerModel({
      api: new EnvManagerAPI(server.settings),
      frontendVersion: '0.1.0'
    });
    await model.connect();
    body = new ImportFormBody({
      values: { scope: 'local', name: '', environment_yml: '', file_name: '' },
      shared: model.sharedState,
      trans,
      submit: (values, build) => model.importYaml(importRequest(values, build))
    });
    Widget.attach(body, document.body);
  });

  afterEach(() => {
    body.dispose();
    model.dispose();
  });

  it('imports the text area and adds the environment to the list', async () => {
    reply = {
      status: 201,
      json: env({
        name: 'imported',
        status: 'building',
        latest_build: build({ status: 'queued' })
      })
    };
    body.setValues({ environment_yml: YML });
    expect(await body.submit(true)).toBe(true);
    expect(server.calls[server.calls.length - 1]).toMatchObject({
      method: 'POST',
      path: 'environments/import',
      body: { scope: 'local', environment_yml: YML, build: true }
    });
    expect(body.result?.latest_build?.status).toBe('queued');
    expect(model.get({ scope: 'local', name: 'imported' })).toBeDefined();
    expect(body.errors).toEqual({});
  });

  it('shows a bad package of the file next to the text area', async () => {
    reply = {
      status: 400,
      json: {
        message: "Invalid conda package spec 'alpha >=>1'",
        field: 'conda',
        item: 'alpha >=>1'
      }
    };
    body.setValues({
      environment_yml: 'name: x\ndependencies: ["alpha >=>1"]'
    });
    expect(await body.submit(false)).toBe(false);
    expect(body.errors).toEqual({
      environment_yml: "Invalid conda package spec 'alpha >=>1'"
    });
    const error = await rendered(
      body,
      '.jp-EnvManager-FieldError[data-field="environment_yml"]'
    );
    expect(error.textContent).toContain('alpha >=>1');
    const textarea = body.node.querySelector('textarea')!;
    expect(textarea.getAttribute('aria-invalid')).toBe('true');
    expect(textarea.getAttribute('aria-describedby')).toBe(error.id);
    // Next to it: in the text area's row.
    expect(error.parentElement).toBe(textarea.parentElement);
  });

  it.each([
    ['runs before React has rendered the errors', (cb: () => void) => cb()],
    ['never comes (a busy main thread)', () => undefined]
  ])(
    'moves focus to the field in error even when an idle moment %s',
    async (_, idle) => {
      const original = window.requestIdleCallback;
      (window as any).requestIdleCallback = (cb: () => void) => {
        idle(cb);
        return 0;
      };
      try {
        reply = {
          status: 400,
          json: { message: 'Bad spec', field: 'conda', item: 'x' }
        };
        await rendered(body, 'textarea');
        body.node.querySelector<HTMLElement>('button, input')?.focus();
        expect(await body.submit(false)).toBe(false);
        const textarea = body.node.querySelector('textarea')!;
        await until(() => textarea.getAttribute('aria-invalid') === 'true');
        await until(() => document.activeElement === textarea);
      } finally {
        window.requestIdleCallback = original;
      }
    }
  );

  it.each([
    ['environment_yml', 400, 'environment_yml'],
    ['pip', 400, 'environment_yml'],
    ['name', 400, 'name'],
    ['name', 409, 'name'],
    ['scope', 400, 'scope'],
    ['no field', 400, 'general']
  ])('puts an error about %s (%i) at %s', async (field, status, shown) => {
    reply = {
      status,
      json: { message: 'Nope', field: field === 'no field' ? null : field }
    };
    expect(await body.submit(false)).toBe(false);
    expect(body.errors).toEqual({ [shown]: 'Nope' });
    const error = await rendered(body, `[data-field="${shown}"]`);
    expect(error.textContent).toBe('Nope');
  });

  it('offers the name in the file as the placeholder of the name', async () => {
    const name = await rendered(body, 'input[name="name"]');
    expect(name.getAttribute('placeholder')).toBe('the name in the file');
    body.setValues({ environment_yml: YML });
    await rendered(body, 'input[name="name"][placeholder="imported"]');
  });

  it('has a YAML file picker and disables shared without a shared store', async () => {
    const picker = await rendered(body, 'input[type="file"]');
    expect(picker.getAttribute('accept')).toBe('.yml,.yaml,.txt,.tar');
    const shared = body.node.querySelector<HTMLInputElement>(
      'input[name="scope"][value="shared"]'
    )!;
    expect(shared.disabled).toBe(true);
    expect(shared.parentElement!.getAttribute('title')).toBe(
      'No shared store is configured on the server'
    );
    expect(
      body.node.querySelector('.jp-EnvManager-Scope')!.textContent
    ).toContain('No shared store is configured on the server');
  });

  it('disables shared, saying why, when the shared store is read-only', async () => {
    const readOnly = new ImportFormBody({
      values: { scope: 'local', name: '', environment_yml: '', file_name: '' },
      shared: 'read-only',
      trans,
      submit: values => model.importYaml(importRequest(values, false))
    });
    Widget.attach(readOnly, document.body);
    try {
      const shared = await rendered(
        readOnly,
        'input[name="scope"][value="shared"]'
      );
      expect((shared as HTMLInputElement).disabled).toBe(true);
      expect(shared.parentElement!.getAttribute('title')).toBe(
        'The shared store is read-only for you'
      );
      const local = readOnly.node.querySelector<HTMLInputElement>(
        'input[name="scope"][value="local"]'
      )!;
      expect(local.disabled).toBe(false);
    } finally {
      readOnly.dispose();
    }
  });
});

describe('EnvFormBody', () => {
  it('keeps showing errors next to its own fields, others at the top', async () => {
    let reply: MockEnvServer.IReply = {};
    const server = new MockEnvServer().on('POST', 'environments', () => reply);
    const api = new EnvManagerAPI(server.settings);
    const body = new EnvFormBody({
      mode: 'create',
      values: {
        scope: 'local',
        name: 'x',
        display_name: '',
        description: '',
        base: '',
        python: '',
        conda: '',
        pip: 'envmgr-hello ==',
        channels: ''
      },
      bases: [],
      shared: 'writable',
      defaultPython: 'default',
      defaultChannels: [],
      trans,
      submit: values => api.createEnvironment({ name: values.name })
    });
    Widget.attach(body, document.body);
    reply = { status: 400, json: { message: 'Bad pip', field: 'pip' } };
    expect(await body.submit(false)).toBe(false);
    expect(body.errors).toEqual({ pip: 'Bad pip' });
    await rendered(body, '.jp-EnvManager-FieldError[data-field="pip"]');
    reply = { status: 400, json: { message: 'Odd', field: 'environment_yml' } };
    expect(await body.submit(false)).toBe(false);
    expect(body.errors).toEqual({ general: 'Odd' });
    body.dispose();
  });
});
