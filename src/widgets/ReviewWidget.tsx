import type { TranslationBundle } from '@jupyterlab/translation';
import type { ISignal } from '@lumino/signaling';
import * as React from 'react';
import type { EnvManagerAPI } from '../api';
import { fullTime } from '../time';
import type { IPublishReview, IRequestChanges } from '../tokens';

const CHANGES: (keyof IRequestChanges)[] = [
  'added',
  'removed',
  'upgraded',
  'downgraded',
  'rebuilt'
];

/**
 * One kind's changes (conda or pip) as a table.
 */
function ChangesTable(props: {
  title: string;
  changes: IRequestChanges;
  trans: TranslationBundle;
}): JSX.Element {
  const { changes, trans } = props;
  const rows = CHANGES.flatMap(what =>
    changes[what].map(change => ({ what, change }))
  );
  return (
    <section className="jp-EnvManager-ReviewDiff" aria-label={props.title}>
      <h3>{props.title}</h3>
      {rows.length === 0 ? (
        <p>{trans.__('No changes')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>{trans.__('Change')}</th>
              <th>{trans.__('Package')}</th>
              <th>{trans.__('Version')}</th>
              <th>{trans.__('Channel')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ what, change }) => (
              <tr
                key={`${what}-${change.name}`}
                className={`jp-mod-${what}`}
                data-package={change.name}
              >
                <td>{what}</td>
                <td>{change.name}</td>
                <td>
                  {change.version ??
                    `${change.from ?? ''} → ${change.to ?? ''}`}
                </td>
                <td>{change.channel ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/**
 * The review of one publish request: who, why, when; the diff against the
 * published version (conda and pip apart); the policy checks; Approve and
 * Reject for approvers.
 */
export function ReviewView(props: {
  api: EnvManagerAPI;
  id: string;
  trans: TranslationBundle;
  changed: ISignal<unknown, void>;
  canApprove: () => boolean;
  onApprove: () => Promise<unknown>;
  onReject: () => Promise<unknown>;
}): JSX.Element {
  const { api, id, trans } = props;
  const [review, setReview] = React.useState<IPublishReview | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const load = React.useCallback(() => {
    api
      .getRequest(id)
      .then(r => {
        setReview(r);
        setError(null);
      })
      .catch(e => setError((e as Error).message));
  }, [api, id]);
  React.useEffect(() => {
    load();
    props.changed.connect(load);
    return () => {
      props.changed.disconnect(load);
    };
  }, [load]);
  if (error) {
    return <p className="jp-EnvManager-EnvError">{error}</p>;
  }
  if (!review) {
    return <p>{trans.__('Loading…')}</p>;
  }
  const from = review.diff?.from;
  const against = from
    ? trans.__('against shared/%1 v%2', from.name, from.version)
    : trans.__('nothing published yet');
  const act = (run: () => Promise<unknown>) => async () => {
    setBusy(true);
    try {
      await run();
    } finally {
      setBusy(false);
      load();
    }
  };
  const open = review.status === 'pending';
  return (
    <div className="jp-EnvManager-ReviewBody" data-status={review.status}>
      <h2>
        {trans.__('%1 v%2 (%3)', review.name, review.version, review.kind)}
      </h2>
      <dl className="jp-EnvManager-EnvFacts">
        <dt>{trans.__('Requester')}</dt>
        <dd>{review.requester}</dd>
        <dt>{trans.__('Reason')}</dt>
        <dd className="jp-EnvManager-ReviewReason">{review.reason}</dd>
        <dt>{trans.__('Submitted')}</dt>
        <dd>{fullTime(review.created_at)}</dd>
        <dt>{trans.__('Status')}</dt>
        <dd className="jp-EnvManager-ReviewStatus">
          {review.status}
          {review.detail ? `: ${review.detail}` : ''}
        </dd>
        {review.error && (
          <>
            <dt>{trans.__('Last publish')}</dt>
            <dd className="jp-EnvManager-EnvError">{review.error}</dd>
          </>
        )}
      </dl>
      {review.diff && (
        <>
          <ChangesTable
            title={trans.__('Conda packages, %1', against)}
            changes={review.diff.conda}
            trans={trans}
          />
          <ChangesTable
            title={trans.__('Pip packages, %1', against)}
            changes={review.diff.pip}
            trans={trans}
          />
        </>
      )}
      <section className="jp-EnvManager-ReviewChecks">
        <h3>{trans.__('Policy checks')}</h3>
        <ul>
          {(review.checks ?? []).map(c => (
            <li
              key={c.check}
              className={
                c.ok
                  ? 'jp-mod-ok'
                  : c.blocking
                    ? 'jp-mod-blocking'
                    : 'jp-mod-flagged'
              }
              data-check={c.check}
            >
              {c.ok ? '✓ ' : '⚠ '}
              {c.message}
            </li>
          ))}
        </ul>
      </section>
      {props.canApprove() && (
        <div className="jp-EnvManager-EnvActions" role="toolbar">
          <button
            type="button"
            className="jp-EnvManager-Action jp-mod-accept"
            disabled={!open || busy}
            onClick={act(props.onApprove)}
          >
            {trans.__('Approve')}
          </button>
          <button
            type="button"
            className="jp-EnvManager-Action jp-mod-reject"
            disabled={!open || busy}
            onClick={act(props.onReject)}
          >
            {trans.__('Reject')}
          </button>
        </div>
      )}
    </div>
  );
}
