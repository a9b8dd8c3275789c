import { nullTranslator } from '@jupyterlab/translation';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { EnvFormBody, IEnvFormValues } from '../components/EnvForm';
import { checkEnvForm } from '../components/EnvFormChecks';
import { fitAtWord, NOTIFICATION_LENGTH } from '../notifications';
import { env, until } from './fixtures';

const trans = nullTranslator.load('jupyter_env_manager');

const GOOD: IEnvFormValues = {
  scope: 'local',
  name: 'data-science',
  display_name: '',
  description: '',
  base: '',
  python: '3.11',
  conda: 'numpy\npandas>=2',
  pip: 'requests',
  channels: 'conda-forge\nhttps://repo.example/ch\nfile:///srv/channel'
};

describe('checkEnvForm', () => {
  it('finds nothing wrong in good values', () => {
    expect(checkEnvForm(GOOD, 'create', trans)).toEqual({});
  });

  it('reports every bad field at once', () => {
    const errors = checkEnvForm(
      { ...GOOD, name: 'Bad Name', python: '3 11', channels: 'not a channel' },
      'create',
      trans
    );
    expect(Object.keys(errors).sort()).toEqual(['channels', 'name', 'python']);
    expect(errors.name).toContain('Invalid name "Bad Name"');
    expect(errors.channels).toContain('"not a channel"');
  });

  it('refuses credentials in a channel URL', () => {
    for (const channel of [
      'https://user:secret@repo.example/ch',
      'https://repo.example/t/tok123/ch'
    ]) {
      const errors = checkEnvForm(
        { ...GOOD, channels: channel },
        'create',
        trans
      );
      expect(errors.channels).toContain('carries credentials');
      expect(errors.channels).not.toContain('secret');
    }
  });

  it('does not check the name of an existing environment', () => {
    expect(checkEnvForm({ ...GOOD, name: '' }, 'edit', trans)).toEqual({});
    expect(checkEnvForm({ ...GOOD, name: '' }, 'create', trans).name).toBe(
      'A short name is required'
    );
  });
});

describe('EnvFormBody checks', () => {
  it('shows all errors beside their fields and sends nothing', async () => {
    const sent: IEnvFormValues[] = [];
    const body = new EnvFormBody({
      mode: 'create',
      values: { ...GOOD, name: '-x', python: '3 11', channels: 'a b' },
      bases: [],
      shared: 'writable',
      defaultPython: '3.11',
      defaultChannels: [],
      trans,
      submit: async values => {
        sent.push(values);
        return env();
      }
    });
    Widget.attach(body, document.body);
    try {
      expect(await body.submit(false)).toBe(false);
      expect(sent).toEqual([]);
      MessageLoop.sendMessage(body, Widget.Msg.UpdateRequest);
      await until(
        () =>
          body.node.querySelectorAll('.jp-EnvManager-FieldError').length === 3
      );
      const shown = Array.from(
        body.node.querySelectorAll<HTMLElement>('.jp-EnvManager-FieldError')
      ).map(node => node.dataset.field);
      expect(shown.sort()).toEqual(['channels', 'name', 'python']);
      body.setValues({ name: 'ok', python: '3.11', channels: '' });
      expect(await body.submit(false)).toBe(true);
      expect(sent).toHaveLength(1);
    } finally {
      body.dispose();
    }
  });
});

describe('fitAtWord', () => {
  it('cuts a long error at a word boundary within a notification', () => {
    const error =
      'Build: demo version 1 failed: Channel https://conda.anaconda.org/conda-forge/ could ' +
      'not be reached: the host name does not resolve (DNS). Set c.EnvManager.channels';
    const shown = fitAtWord(error);
    expect(shown.length).toBeLessThanOrEqual(NOTIFICATION_LENGTH);
    expect(shown.endsWith('…')).toBe(true);
    const kept = shown.slice(0, -1);
    expect(error.startsWith(kept)).toBe(true);
    expect(error[kept.length]).toMatch(/[\s.,;:]/); // the next character ends a word
    expect(kept).toContain('https://conda.anaconda.org/conda-forge/'); // the URL whole
    expect(fitAtWord('short')).toBe('short');
  });
});
