import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import type { PackageKind } from '../tokens';
import { specName } from '../widgets/PackagesLogic';

/**
 * One line of a spec draft: kept (' '), removed ('-') or added ('+').
 */
export interface IDraftLine {
  mark: ' ' | '-' | '+';
  text: string;
}

/**
 * The lines of a spec before and after an edit, marked as a diff: a line
 * replaced in place shows as its old line then its new one.
 */
export function draftLines(
  before: string[],
  after: string[],
  kind: PackageKind
): IDraftLine[] {
  const out: IDraftLine[] = [];
  const emitted = new Set<string>();
  for (const line of before) {
    if (after.includes(line)) {
      out.push({ mark: ' ', text: line });
      emitted.add(line);
      continue;
    }
    out.push({ mark: '-', text: line });
    const replacement = after.find(
      other =>
        !before.includes(other) &&
        !emitted.has(other) &&
        specName(other, kind) === specName(line, kind)
    );
    if (replacement) {
      out.push({ mark: '+', text: replacement });
      emitted.add(replacement);
    }
  }
  for (const line of after) {
    if (!emitted.has(line) && !before.includes(line)) {
      out.push({ mark: '+', text: line });
    }
  }
  return out;
}

/**
 * The draft change of the spec, shown before building.
 */
export function SpecDraft(props: {
  before: string[];
  after: string[];
  kind: PackageKind;
  trans: TranslationBundle;
}): JSX.Element {
  const { trans, kind } = props;
  const lines = draftLines(props.before, props.after, kind);
  return (
    <div className="jp-EnvManager-SpecDraft">
      <p>
        {kind === 'pip'
          ? trans.__('The pip packages of the spec would become:')
          : trans.__('The conda packages of the spec would become:')}
      </p>
      <pre aria-label={trans.__('Spec change')}>
        {lines.length === 0 && (
          <span className="jp-EnvManager-Muted">{trans.__('(none)')}</span>
        )}
        {lines.map((line, index) => (
          <div
            key={index}
            className={`jp-EnvManager-DraftLine ${
              line.mark === '+'
                ? 'jp-mod-added'
                : line.mark === '-'
                  ? 'jp-mod-removed'
                  : ''
            }`}
          >
            {`${line.mark} ${line.text}`}
          </div>
        ))}
      </pre>
      <p className="jp-EnvManager-Muted">
        {trans.__(
          'Build makes a new version from this spec; the spec changes only if the build succeeds.'
        )}
      </p>
    </div>
  );
}

/**
 * Show a draft spec change; resolves true when the user chose "Build".
 */
export async function confirmDraft(options: {
  title: string;
  before: string[];
  after: string[];
  kind: PackageKind;
  trans: TranslationBundle;
}): Promise<boolean> {
  const { trans } = options;
  const result = await showDialog({
    title: options.title,
    body: ReactWidget.create(<SpecDraft {...options} />),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({ label: trans.__('Build') })
    ]
  });
  return result.button.accept;
}
