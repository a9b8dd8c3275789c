import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { IEnv, IImportEnvRequest, Scope, SharedState } from '../tokens';
import {
  FormBody,
  FormErrors,
  formFields,
  GeneralError,
  ScopeField
} from './Form';

/**
 * What the import form edits.
 */
export interface IImportFormValues {
  scope: Scope;
  /**
   * Empty to use the name in the file.
   */
  name: string;
  /**
   * The file's text: an environment.yml or a requirements.txt.
   */
  environment_yml: string;
  /**
   * The name of the picked file, if any (tells a requirements.txt apart).
   */
  file_name: string;
}

/**
 * Whether the text to import is a requirements.txt rather than an
 * environment.yml: by the picked file's name, else by its content (an
 * environment.yml is a YAML mapping: `key:` lines). The server checks it.
 */
export function looksLikeRequirements(text: string, fileName = ''): boolean {
  const lower = fileName.toLowerCase();
  if (/\.ya?ml$/.test(lower)) {
    return false;
  }
  if (/\.(txt|in)$/.test(lower) || lower.startsWith('requirements')) {
    return true;
  }
  const lines = text
    .split('\n')
    .map(line => line.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean);
  return (
    lines.length > 0 && !lines.some(line => /^[A-Za-z_]+:(\s|$)/.test(line))
  );
}

/**
 * The top-level `name:` of an environment.yml, for the name field's
 * placeholder (the server parses the file; this is only a hint).
 */
export function ymlName(text: string): string {
  const match = /^name:[ \t]*(.*)$/m.exec(text);
  if (!match) {
    return '';
  }
  const value = match[1].replace(/\s+#.*$/, '').trim();
  return value.replace(/^(['"])(.*)\1$/, '$2');
}

/**
 * The body of POST environments/import for the form values.
 */
export function importRequest(
  values: IImportFormValues,
  build: boolean
): IImportEnvRequest {
  const request: IImportEnvRequest = { scope: values.scope, build };
  if (looksLikeRequirements(values.environment_yml, values.file_name)) {
    request.requirements_txt = values.environment_yml;
  } else {
    request.environment_yml = values.environment_yml;
  }
  if (values.name.trim()) {
    request.name = values.name.trim();
  }
  return request;
}

interface IImportFormProps {
  values: IImportFormValues;
  errors: FormErrors;
  shared: SharedState;
  trans: TranslationBundle;
  onChange: (values: Partial<IImportFormValues>) => void;
  /**
   * The bundle picked (a `.tar` file), if any.
   */
  bundle?: File | null;
  onBundle?: (bundle: File | null) => void;
}

/**
 * Whether a picked file is a bundle (made by `export --format bundle`).
 */
export function isBundle(file: { name: string }): boolean {
  return file.name.toLowerCase().endsWith('.tar');
}

/**
 * The "Import environment.yml" form: the file is picked or pasted into the
 * text area. Server validation errors are shown next to the field they
 * concern; those about the file's content next to the text area.
 */
export function ImportForm(props: IImportFormProps): JSX.Element {
  const { values, errors, trans } = props;
  const { set, control, errorOf, id } = formFields(
    values,
    errors,
    props.onChange
  );
  const fileName = ymlName(values.environment_yml);
  const pick = async (event: React.ChangeEvent<HTMLInputElement>) => {
    const input = event.target;
    const file = input.files?.[0];
    if (file && isBundle(file)) {
      props.onBundle?.(file);
    } else if (file) {
      props.onBundle?.(null);
      props.onChange({
        environment_yml: await file.text(),
        file_name: file.name
      });
    }
    // Picking the same file again reads it again.
    input.value = '';
  };

  return (
    <div className="jp-EnvManager-Form">
      <GeneralError errors={errors} />
      <ScopeField
        value={values.scope}
        shared={props.shared}
        trans={trans}
        onChange={set('scope')}
        error={errorOf('scope')}
      />
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('name')}>{trans.__('Short name')}</label>
        <input
          {...control('name')}
          className="jp-mod-styled"
          placeholder={
            props.bundle
              ? trans.__("the bundled environment's name")
              : fileName || trans.__('the name in the file')
          }
          autoComplete="off"
          spellCheck={false}
        />
        <div className="jp-EnvManager-Hint">
          {trans.__(
            'Leave empty to use the name in the file (a requirements.txt has none).'
          )}
        </div>
        {errorOf('name')}
      </div>
      <div className="jp-EnvManager-FormRow">
        <label htmlFor={id('file')}>{trans.__('File')}</label>
        <input
          id={id('file')}
          type="file"
          accept=".yml,.yaml,.txt,.tar"
          onChange={event => void pick(event)}
        />
        <div className="jp-EnvManager-Hint">
          {trans.__(
            'An environment.yml, or a bundle (.tar, from export --format bundle): a bundle is built at once, exactly, with no network.'
          )}
        </div>
        {errorOf('bundle')}
      </div>
      {props.bundle ? (
        <div className="jp-EnvManager-FormRow" data-bundle={props.bundle.name}>
          {trans.__('Bundle: %1', props.bundle.name)}
        </div>
      ) : (
        <div className="jp-EnvManager-FormRow">
          <label htmlFor={id('environment_yml')}>
            {trans.__(
              'environment.yml or requirements.txt (pick a file or paste it here)'
            )}
          </label>
          <textarea
            {...control('environment_yml')}
            className="jp-mod-styled"
            rows={10}
            spellCheck={false}
            placeholder={
              'name: analysis\ndependencies:\n  - python=3.11\n  - pandas\n  - pip:\n    - requests'
            }
          />
          {errorOf('environment_yml')}
        </div>
      )}
    </div>
  );
}

/**
 * The import form as a dialog body.
 */
export class ImportFormBody extends FormBody<IImportFormValues> {
  constructor(
    private _props: Omit<IImportFormProps, 'errors' | 'onChange'> & {
      submit: (values: IImportFormValues, build: boolean) => Promise<IEnv>;
    }
  ) {
    super(_props);
  }

  /**
   * Errors about the name and the store are shown next to their fields;
   * those about the spec (conda, pip, python, channels) come from the file.
   */
  /**
   * The bundle picked instead of an environment.yml, or null.
   */
  get bundle(): File | null {
    return this._bundle;
  }

  set bundle(bundle: File | null) {
    this._bundle = bundle;
    this.update();
  }

  protected errorField(field: string | null): string | null {
    if (!field) {
      return null;
    }
    if (field === 'bundle') {
      return field;
    }
    return field === 'name' || field === 'scope' ? field : 'environment_yml';
  }

  protected renderForm(
    values: IImportFormValues,
    errors: FormErrors,
    onChange: (values: Partial<IImportFormValues>) => void
  ): JSX.Element {
    return (
      <ImportForm
        {...this._props}
        values={values}
        errors={errors}
        onChange={onChange}
        bundle={this._bundle}
        onBundle={bundle => (this.bundle = bundle)}
      />
    );
  }

  private _bundle: File | null = null;
}
