import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';
import { PIN_MIME_TYPE, PinBundle, readPinBundle } from '../pins';

/**
 * Whether an output was applied already, in the output's own metadata (it
 * is saved with the notebook: reopening the notebook shows the output and
 * does not apply it again).
 */
interface IAppliedMark {
  applied?: boolean;
}

/**
 * Renders what `%envmgr pin` / `%envmgr unpin` display as one line, and
 * applies it to the notebook showing it: once, and only for a trusted output
 * (one the kernel just sent, not one read from an untrusted file).
 */
export class PinRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: PinRenderer.IOptions) {
    super();
    this._apply = options.apply;
    this._trans = options.trans;
    this.addClass('jp-EnvManager-PinOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const bundle = readPinBundle(model.data[PIN_MIME_TYPE]);
    if (!bundle) {
      this._show(this._trans.__('Not a valid pin.'), 'error');
      return;
    }
    if (this._applying) {
      // Rendered again because this output was marked as applied.
      return;
    }
    const mark = (model.metadata[PIN_MIME_TYPE] ?? {}) as IAppliedMark;
    this._show(this._describe(bundle), 'done');
    if (mark.applied) {
      return;
    }
    if (!model.trusted) {
      this._show(
        this._trans.__(
          '%1 (not applied: the output is not trusted)',
          this._describe(bundle)
        ),
        'untrusted'
      );
      return;
    }
    this._applying = true;
    // Marked first: a failure is shown here, not retried each time the
    // notebook opens.
    model.setData({
      metadata: {
        ...model.metadata,
        [PIN_MIME_TYPE]: { applied: true }
      }
    });
    this._show(this._describe(bundle), 'applying');
    try {
      await this._apply(bundle);
      this._show(this._describe(bundle), 'done');
    } catch (error) {
      this._show(
        this._trans.__(
          '%1 failed: %2',
          this._describe(bundle),
          (error as Error).message ?? String(error)
        ),
        'error'
      );
    }
  }

  private _describe(bundle: PinBundle): string {
    return bundle.kind === 'pin'
      ? this._trans.__(
          'Pinned this notebook to %1 v%2 (kernel %3)',
          bundle.result.name,
          bundle.result.version,
          bundle.result.kernel_name
        )
      : this._trans.__(
          'Unpinned this notebook (kernel %1)',
          bundle.kernel_name
        );
  }

  private _show(text: string, state: string): void {
    this.node.textContent = text;
    this.node.dataset.state = state;
    this.toggleClass('jp-mod-error', state === 'error');
  }

  private _apply: (bundle: PinBundle) => Promise<void>;
  private _trans: TranslationBundle;
  private _applying = false;
}

export namespace PinRenderer {
  export interface IOptions {
    /**
     * Apply a pin or unpin to the notebook this output belongs to.
     */
    apply: (bundle: PinBundle) => Promise<void>;
    trans: TranslationBundle;
  }

  /**
   * A renderer factory for one notebook's outputs.
   */
  export function factory(
    options: PinRenderer.IOptions
  ): IRenderMime.IRendererFactory {
    return {
      safe: true,
      mimeTypes: [PIN_MIME_TYPE],
      defaultRank: 50,
      createRenderer: () => new PinRenderer(options)
    };
  }
}
