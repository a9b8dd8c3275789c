import type { TranslationBundle } from '@jupyterlab/translation';
import type { FormErrors } from './Form';

/**
 * The checks the "New environment" / "Edit spec" dialog runs before it sends
 * anything, all at once, so that every bad field is marked beside itself in
 * one go. They mirror the server's rules (jupyter_env_manager/core/spec.py),
 * which stay the authority: what passes here may still get the server's 400.
 */
export interface IEnvCheckValues {
  name: string;
  base: string;
  python: string;
  conda: string;
  pip: string;
  channels: string;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)*$/;
const CHANNEL_URL = /^(https?|file):\/\/[\x21-\x7e]+$/;
const CREDENTIALS = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]+@|:\/\/.*\/t\/[^/\s]+/i;
const MAX_ITEM = 500;
const MAX_PACKAGES = 500;

function items(text: string): string[] {
  return text
    .split('\n')
    .map(line => line.trim())
    .filter(line => line && !line.startsWith('#'));
}

function listProblem(trans: TranslationBundle, list: string[]): string | null {
  if (list.length > MAX_PACKAGES) {
    return trans.__('At most %1 entries', MAX_PACKAGES);
  }
  const long = list.find(item => item.length > MAX_ITEM);
  return long
    ? trans.__(
        'Entry "%1…" is longer than %2 characters',
        long.slice(0, 20),
        MAX_ITEM
      )
    : null;
}

/**
 * Every problem of the form's values, by field (empty: nothing found).
 */
export function checkEnvForm(
  values: IEnvCheckValues,
  mode: 'create' | 'edit',
  trans: TranslationBundle
): FormErrors {
  const errors: FormErrors = {};
  const name = values.name.trim();
  if (mode === 'create') {
    if (!name) {
      errors.name = trans.__('A short name is required');
    } else if (!NAME.test(name)) {
      errors.name = trans.__(
        'Invalid name "%1": use 1-32 lowercase letters, digits, "-" or "_", starting with a letter or digit',
        name
      );
    }
  }
  const python = values.python.trim();
  if (!values.base && python && !/^[\x21-\x7e]{1,100}$/.test(python)) {
    errors.python = trans.__(
      'Invalid python version: use a version such as "3.11"'
    );
  }
  for (const field of ['conda', 'pip'] as const) {
    const problem = listProblem(trans, items(values[field]));
    if (problem) {
      errors[field] = problem;
    }
  }
  const channels = items(values.channels);
  const bad = channels.filter(
    c => !(CHANNEL_NAME.test(c) || CHANNEL_URL.test(c))
  );
  const secret = channels.filter(c => CREDENTIALS.test(c));
  if (bad.length) {
    errors.channels = trans.__(
      'Invalid channel %1: use a channel name or an http(s):// or file:// URL',
      bad.map(c => `"${c}"`).join(', ')
    );
  } else if (secret.length) {
    errors.channels = trans.__(
      "A channel URL carries credentials: give the plain URL; credentials go in the server's configuration (rattler's auth file or ~/.netrc)"
    );
  } else {
    const problem = listProblem(trans, channels);
    if (problem) {
      errors.channels = problem;
    }
  }
  return errors;
}
