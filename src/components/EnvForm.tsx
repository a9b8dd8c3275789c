import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type {
  ICreateEnvRequest,
  IEnv,
  IEnvPatch,
  Scope,
  SharedState
} from '../tokens';
import {
  FormBody,
  FormErrors,
  formFields,
  GeneralError,
  ScopeField
} from './Form';
import { checkEnvForm } from './EnvFormChecks';

/**
 * What the form edits (text areas hold one item per line).
 */
export interface IEnvFormValues {
  scope: Scope;
  name: string;
  display_name: string;
  description: string;
  base: string;
  python: string;
  conda: string;
  pip: string;
  channels: string;
}

/**
 * The fields the form shows; an error whose `field` is not one of them is
 * shown at the top of the form.
 */
const FIELDS = [
  'scope',
  'name',
  'display_name',
  'description',
  'base',
  'python',
  'conda',
  'pip',
  'channels'
] as const;

/**
 * Split a text area into its non-empty lines.
 */
export function lines(text: string): string[] {
  return text
    .split('\n')
    .map(line => line.trim())
    .filter(line => line && !line.startsWith('#'));
}

/**
 * The form values of an existing environment (for "Edit spec").
 */
export function valuesFromEnv(env: IEnv): IEnvFormValues {
  return {
    scope: env.scope,
    name: env.name,
    display_name: env.display_name ?? '',
    description: env.description ?? '',
    base: env.spec.base ?? '',
    python: env.spec.python ?? '',
    conda: env.spec.conda.join('\n'),
    pip: env.spec.pip.join('\n'),
    channels: env.spec.channels.join('\n')
  };
}

/**
 * The body of POST environments for the form values.
 */
export function createRequest(
  values: IEnvFormValues,
  build: boolean
): ICreateEnvRequest {
  const request: ICreateEnvRequest = {
    scope: values.scope,
    name: values.name.trim(),
    conda: lines(values.conda),
    pip: lines(values.pip),
    build
  };
  if (values.display_name.trim()) {
    request.display_name = values.display_name.trim();
  }
  if (values.description.trim()) {
    request.description = values.description.trim();
  }
  if (values.base) {
    request.base = values.base;
  } else if (values.python.trim()) {
    request.python = values.python.trim();
  }
  const channels = lines(values.channels);
  if (channels.length) {
    request.channels = channels;
  }
  return request;
}

/**
 * The body of PATCH for the form values (every spec field, so that clearing
 * a field clears it on the server).
 */
export function patchRequest(values: IEnvFormValues): IEnvPatch {
  return {
    display_name: values.display_name.trim(),
    description: values.description.trim(),
    base: values.base || null,
    python: values.base ? null : values.python.trim() || null,
    conda: lines(values.conda),
    pip: lines(values.pip),
    channels: lines(values.channels)
  };
}

interface IFormProps {
  mode: 'create' | 'edit';
  values: IEnvFormValues;
  errors: FormErrors;
  bases: { value: string; label: string }[];
  shared: SharedState;
  defaultPython: string;
  defaultChannels: string[];
  trans: TranslationBundle;
  onChange: (values: IEnvFormValues) => void;
}

/**
 * The "New environment" / "Edit spec" form. Server validation errors are
 * shown next to the field they name.
 */
export function EnvForm(props: IFormProps): JSX.Element {
  const { values, errors, trans, mode } = props;
  const { set, control, errorOf, id } = formFields(
    values,
    errors,
    props.onChange
  );

  return (
    <div className="jp-EnvManager-Form">
      <GeneralError errors={errors} />
      {mode === 'create' && (
        <ScopeField
          value={values.scope}
          shared={props.shared}
          trans={trans}
          onChange={set('scope')}
          error={errorOf('scope')}
        />
      )}
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('name')}>{trans.__('Short name')}</label>
        <input
          {...control('name')}
          className="jp-mod-styled"
          disabled={mode === 'edit'}
          autoFocus={mode === 'create'}
          placeholder={trans.__('e.g. data-science')}
          autoComplete="off"
          spellCheck={false}
        />
        <div className="jp-EnvManager-Hint">
          {trans.__(
            'Lowercase letters, digits, "-" and "_"; used in paths and kernel names.'
          )}
        </div>
        {errorOf('name')}
      </div>
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('display_name')}>{trans.__('Display name')}</label>
        <input
          {...control('display_name')}
          className="jp-mod-styled"
          placeholder={trans.__(
            'Shown in the Launcher, e.g. Data Science (py3.11)'
          )}
        />
        {errorOf('display_name')}
      </div>
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('description')}>{trans.__('Description')}</label>
        <input {...control('description')} className="jp-mod-styled" />
        {errorOf('description')}
      </div>
      <div className="jp-EnvManager-FormRow jp-EnvManager-FormPair">
        <div>
          <label htmlFor={id('base')}>{trans.__('Base environment')}</label>
          <select {...control('base')} className="jp-mod-styled">
            <option value="">{trans.__('None')}</option>
            {props.bases.map(base => (
              <option key={base.value} value={base.value}>
                {base.label}
              </option>
            ))}
          </select>
          {errorOf('base')}
        </div>
        <div>
          <label htmlFor={id('python')}>{trans.__('Python version')}</label>
          <input
            {...control('python')}
            className="jp-mod-styled"
            disabled={!!values.base}
            title={
              values.base
                ? trans.__('A base environment brings its own Python')
                : undefined
            }
            placeholder={values.base ? '' : props.defaultPython}
          />
          {errorOf('python')}
        </div>
      </div>
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('conda')}>
          {trans.__('Conda packages (one per line)')}
        </label>
        <textarea
          {...control('conda')}
          className="jp-mod-styled"
          autoFocus={mode === 'edit'}
          rows={5}
          spellCheck={false}
          placeholder={'numpy\npandas>=2'}
        />
        {errorOf('conda')}
      </div>
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('pip')}>
          {trans.__('Pip packages (one per line)')}
        </label>
        <textarea
          {...control('pip')}
          className="jp-mod-styled"
          rows={3}
          spellCheck={false}
          placeholder={'requests'}
        />
        {errorOf('pip')}
      </div>
      <details
        className="jp-EnvManager-Advanced"
        open={!!errors.channels || !!values.channels}
      >
        <summary>{trans.__('Advanced')}</summary>
        <div className="jp-EnvManager-FormRow">
          <label htmlFor={id('channels')}>
            {trans.__('Channels (one per line)')}
          </label>
          <textarea
            {...control('channels')}
            className="jp-mod-styled"
            rows={2}
            spellCheck={false}
            placeholder={props.defaultChannels.join('\n')}
          />
          <div className="jp-EnvManager-Hint">
            {trans.__(
              'Leave empty to use the server defaults: %1',
              props.defaultChannels.join(', ')
            )}
          </div>
          {errorOf('channels')}
        </div>
      </details>
    </div>
  );
}

/**
 * The form as a dialog body.
 */
export class EnvFormBody extends FormBody<IEnvFormValues> {
  constructor(
    private _props: Omit<IFormProps, 'errors' | 'onChange'> & {
      submit: (values: IEnvFormValues, build: boolean) => Promise<IEnv>;
    }
  ) {
    super(_props);
  }

  protected check(values: IEnvFormValues): FormErrors {
    return checkEnvForm(values, this._props.mode, this._props.trans);
  }

  protected errorField(field: string | null): string | null {
    return field && (FIELDS as ReadonlyArray<string>).includes(field)
      ? field
      : null;
  }

  protected renderForm(
    values: IEnvFormValues,
    errors: FormErrors,
    onChange: (values: Partial<IEnvFormValues>) => void
  ): JSX.Element {
    return (
      <EnvForm
        {...this._props}
        values={values}
        errors={errors}
        onChange={onChange}
      />
    );
  }
}
