import { Dialog, ReactWidget } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { ApiError } from '../api';
import type { IEnv, Scope, SharedState } from '../tokens';

/**
 * Server validation messages by the form field they are shown next to;
 * `general` is shown at the top of the form.
 */
export type FormErrors = Partial<Record<string, string>>;

/**
 * What the dialog forms edit: text fields by name.
 */
export type FormValues<V> = Record<keyof V, string>;

type ChangeEvent = React.ChangeEvent<
  HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement
>;

/**
 * The helpers {@link formFields} gives a form.
 */
export interface IFormFields<V> {
  /**
   * The element id of a field (or of `${field}-error`).
   */
  id: (field: string) => string;
  /**
   * The change handler of a field.
   */
  set: (field: keyof V & string) => (event: ChangeEvent) => void;
  /**
   * The props of a field's control: id, name, value, change handler and
   * its error state.
   */
  control: (field: keyof V & string) => {
    id: string;
    name: string;
    value: string;
    onChange: (event: ChangeEvent) => void;
    'aria-invalid': boolean;
    'aria-describedby': string | undefined;
  };
  /**
   * The server error of a field, shown next to it.
   */
  errorOf: (field: string) => JSX.Element | null;
}

/**
 * The props, element ids and error line of the fields of a form, so that
 * every control is labelled and described by its server error the same way.
 */
export function formFields<V extends FormValues<V>>(
  values: V,
  errors: FormErrors,
  onChange: (values: V) => void
): IFormFields<V> {
  const id = (field: string) => `jp-EnvManager-form-${field}`;
  const set = (field: keyof V & string) => (event: ChangeEvent) =>
    onChange({ ...values, [field]: event.target.value });
  const errorOf = (field: string) =>
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
  const control = (field: keyof V & string) => ({
    id: id(field),
    name: field,
    value: values[field],
    onChange: set(field),
    'aria-invalid': !!errors[field],
    'aria-describedby': errors[field] ? id(`${field}-error`) : undefined
  });
  return { id, set, control, errorOf };
}

/**
 * The error of the form as a whole (a server error about no field).
 */
export function GeneralError(props: {
  errors: FormErrors;
}): JSX.Element | null {
  return props.errors.general ? (
    <div className="jp-EnvManager-Error" role="alert" data-field="general">
      {props.errors.general}
    </div>
  ) : null;
}

/**
 * The store a new environment goes to; "Shared" is disabled, with the
 * reason, when the server has no shared store or it is read-only for the user.
 */
export function ScopeField(props: {
  value: Scope;
  shared: SharedState;
  trans: TranslationBundle;
  onChange: React.ChangeEventHandler<HTMLInputElement>;
  error: JSX.Element | null;
}): JSX.Element {
  const { trans } = props;
  const noShared =
    props.shared === 'unconfigured'
      ? trans.__('No shared store is configured on the server')
      : props.shared === 'read-only'
        ? trans.__('The shared store is read-only for you')
        : '';
  return (
    <fieldset className="jp-EnvManager-FormRow jp-EnvManager-Scope">
      <legend>{trans.__('Store')}</legend>
      <label>
        <input
          type="radio"
          name="scope"
          value="local"
          checked={props.value === 'local'}
          onChange={props.onChange}
        />{' '}
        {trans.__('Local (only you)')}
      </label>
      <label title={noShared || undefined}>
        <input
          type="radio"
          name="scope"
          value="shared"
          checked={props.value === 'shared'}
          disabled={!!noShared}
          onChange={props.onChange}
        />{' '}
        {trans.__('Shared (your team)')}
      </label>
      {noShared && <div className="jp-EnvManager-Hint">{noShared}</div>}
      {props.error}
    </fieldset>
  );
}

/**
 * A form as a dialog body: it keeps the values and the server's errors, and
 * submits the values. Subclasses render the form and say which field shows
 * an error the server reported about a request field.
 */
export abstract class FormBody<V extends FormValues<V>> extends ReactWidget {
  constructor(options: {
    values: V;
    submit: (values: V, build: boolean) => Promise<IEnv>;
  }) {
    super();
    this.addClass('jp-EnvManager-FormBody');
    this._values = options.values;
    this._submit = options.submit;
  }

  /**
   * The current values of the form.
   */
  get values(): V {
    return this._values;
  }

  /**
   * The errors shown, by form field (`general` for the form as a whole).
   */
  get errors(): FormErrors {
    return this._errors;
  }

  /**
   * The environment created or saved by the last successful submit.
   */
  get result(): IEnv | null {
    return this._result;
  }

  /**
   * Change some values (and re-render).
   */
  setValues(values: Partial<V>): void {
    this._values = { ...this._values, ...values };
    this.update();
  }

  /**
   * Send the form; on a server error keep the dialog open and show the
   * message next to its field.
   *
   * @returns whether the request succeeded
   */
  async submit(build: boolean): Promise<boolean> {
    // Every problem found here is shown at once, each beside its field.
    this._errors = this.check(this._values);
    if (Object.keys(this._errors).length > 0) {
      this._focusRequest++;
      this.update();
      return false;
    }
    this.addClass('jp-mod-busy');
    this.update();
    try {
      this._result = await this._submit(this._values, build);
      return true;
    } catch (error) {
      const apiError = error as ApiError;
      const field = this.errorField(apiError.field ?? null);
      this._errors = {
        [field ?? 'general']: apiError.message ?? String(error)
      };
      return false;
    } finally {
      this.removeClass('jp-mod-busy');
      if (Object.keys(this._errors).length > 0) {
        this._focusRequest++;
      }
      this.update();
    }
  }

  getValue(): IEnv | null {
    return this._result;
  }

  /**
   * The problems of `values` the form can see before sending them, by field.
   */
  protected check(values: V): FormErrors {
    return {};
  }

  /**
   * The form field that shows an error about request field `field`, or null
   * to show it at the top of the form.
   */
  protected abstract errorField(field: string | null): string | null;

  /**
   * Render the form for the current values and errors.
   */
  protected abstract renderForm(
    values: V,
    errors: FormErrors,
    onChange: (values: Partial<V>) => void
  ): JSX.Element;

  protected render(): JSX.Element {
    return (
      <FocusFirstInvalid node={this.node} request={this._focusRequest}>
        {this.renderForm(this._values, this._errors, values =>
          this.setValues(values)
        )}
      </FocusFirstInvalid>
    );
  }

  private _values: V;
  private _submit: (values: V, build: boolean) => Promise<IEnv>;
  private _errors: FormErrors = {};
  private _result: IEnv | null = null;
  private _focusRequest = 0;
}

/**
 * Moves focus to the first field marked invalid each time `request` grows,
 * in an effect: React runs it once the errors are in the DOM, whatever the
 * machine's load (an idle callback could run before React committed).
 */
function FocusFirstInvalid(props: {
  node: HTMLElement;
  request: number;
  children: React.ReactNode;
}): JSX.Element {
  const { node, request } = props;
  React.useEffect(() => {
    if (request > 0) {
      node.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
    }
  }, [request]);
  return <>{props.children}</>;
}

/**
 * A dialog whose accept buttons submit the form first and close only when
 * the server accepted it. The button's `actions` carry `build` for
 * "Create and build" and the like.
 */
export class FormDialog<V extends FormValues<V>> extends Dialog<IEnv | null> {
  constructor(
    options: Partial<Dialog.IOptions<IEnv | null>> & {
      body: FormBody<V>;
      buttons: Dialog.IButton[];
    }
  ) {
    super(options);
    this.addClass('jp-EnvManager-FormDialog');
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

  private _form: FormBody<V>;
  private _buttonList: Dialog.IButton[];
  private _defaultIndex: number;
  private _busy = false;
}
