import { Dialog, ReactWidget } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { Message } from '@lumino/messaging';
import * as React from 'react';
import { ApiError } from '../api';
import type { ICreateEnvRequest, IEnv, IEnvPatch, Scope } from '../tokens';

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

type Field = (typeof FIELDS)[number];

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
  errors: Partial<Record<Field | 'general', string>>;
  bases: { value: string; label: string }[];
  hasShared: boolean;
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
  const set =
    (field: Field) =>
    (
      event: React.ChangeEvent<
        HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement
      >
    ) =>
      props.onChange({ ...values, [field]: event.target.value });
  const id = (field: string) => `jp-EnvManager-form-${field}`;
  const errorOf = (field: Field) =>
    errors[field] ? (
      <div
        className="jp-EnvManager-FieldError"
        id={id(`${field}-error`)}
        data-field={field}
        role="alert"
      >
        {errors[field]}
      </div>
    ) : null;
  const control = (field: Field) => ({
    id: id(field),
    name: field,
    value: values[field],
    onChange: set(field),
    'aria-invalid': !!errors[field],
    'aria-describedby': errors[field] ? id(`${field}-error`) : undefined
  });

  return (
    <div className="jp-EnvManager-Form">
      {errors.general && (
        <div className="jp-EnvManager-Error" role="alert" data-field="general">
          {errors.general}
        </div>
      )}
      {mode === 'create' && (
        <fieldset className="jp-EnvManager-FormRow jp-EnvManager-Scope">
          <legend>{trans.__('Store')}</legend>
          <label>
            <input
              type="radio"
              name="scope"
              value="local"
              checked={values.scope === 'local'}
              onChange={set('scope')}
            />{' '}
            {trans.__('Local (only you)')}
          </label>
          <label
            title={
              props.hasShared
                ? undefined
                : trans.__('No shared store is configured on the server')
            }
          >
            <input
              type="radio"
              name="scope"
              value="shared"
              checked={values.scope === 'shared'}
              disabled={!props.hasShared}
              onChange={set('scope')}
            />{' '}
            {trans.__('Shared (your team)')}
          </label>
          {errorOf('scope')}
        </fieldset>
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
 * The form as a dialog body: it keeps the values and errors and submits them.
 */
export class EnvFormBody extends ReactWidget {
  constructor(
    private _props: Omit<IFormProps, 'errors' | 'onChange'> & {
      submit: (values: IEnvFormValues, build: boolean) => Promise<IEnv>;
    }
  ) {
    super();
    this.addClass('jp-EnvManager-FormBody');
    this._values = _props.values;
  }

  /**
   * The environment created or saved by the last successful submit.
   */
  get result(): IEnv | null {
    return this._result;
  }

  /**
   * Send the form; on a server error keep the dialog open and show the
   * message next to its field.
   *
   * @returns whether the request succeeded
   */
  async submit(build: boolean): Promise<boolean> {
    this._errors = {};
    this.addClass('jp-mod-busy');
    this.update();
    try {
      this._result = await this._props.submit(this._values, build);
      return true;
    } catch (error) {
      const apiError = error as ApiError;
      const field = apiError.field as Field | null;
      if (field && (FIELDS as ReadonlyArray<string>).includes(field)) {
        this._errors = { [field]: apiError.message };
      } else {
        this._errors = { general: apiError.message ?? String(error) };
      }
      return false;
    } finally {
      this.removeClass('jp-mod-busy');
      this._focusPending = Object.keys(this._errors).length > 0;
      this.update();
    }
  }

  getValue(): IEnv | null {
    return this._result;
  }

  protected render(): JSX.Element {
    return (
      <EnvForm
        {...this._props}
        values={this._values}
        errors={this._errors}
        onChange={values => {
          this._values = values;
          this.update();
        }}
      />
    );
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    if (this._focusPending) {
      this._focusPending = false;
      // Once React has rendered the errors, move focus to the first field in error.
      void this.renderPromise?.then(() => {
        this.node.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
      });
    }
  }

  private _values: IEnvFormValues;
  private _errors: IFormProps['errors'] = {};
  private _result: IEnv | null = null;
  private _focusPending = false;
}

/**
 * A dialog whose accept buttons submit the form first and close only when
 * the server accepted it. The button's `actions` carry `build` for
 * "Create and build".
 */
export class EnvFormDialog extends Dialog<IEnv | null> {
  constructor(
    options: Partial<Dialog.IOptions<IEnv | null>> & {
      body: EnvFormBody;
      buttons: Dialog.IButton[];
    }
  ) {
    super(options);
    this._form = options.body;
    this._buttonList = options.buttons;
    this._defaultIndex = options.defaultButton ?? options.buttons.length - 1;
  }

  resolve(index?: number): void {
    const button = this._buttonList[index ?? this._defaultIndex];
    if (!button || !button.accept) {
      super.resolve(index);
      return;
    }
    if (this._busy) {
      return;
    }
    this._busy = true;
    void this._form.submit(button.actions.includes('build')).then(ok => {
      this._busy = false;
      if (ok) {
        super.resolve(index);
      }
    });
  }

  private _form: EnvFormBody;
  private _buttonList: Dialog.IButton[];
  private _defaultIndex: number;
  private _busy = false;
}
