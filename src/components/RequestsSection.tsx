import type { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import type { Event } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import {
  PanelWithToolbar,
  ReactWidget,
  UseSignal
} from '@jupyterlab/ui-components';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Signal } from '@lumino/signaling';
import * as React from 'react';
import { envManagerIcon } from '../icons';
import type { EnvManagerModel } from '../model';
import { fullTime, humanTime } from '../time';
import {
  EventSchemas,
  type IEnv,
  type IEnvRef,
  type IPublishRequest,
  type Scope
} from '../tokens';
import { ReviewView } from '../widgets/ReviewWidget';

/**
 * The commands of publishing with approval.
 */
export namespace PublishCommandIDs {
  export const submit = 'env-manager:submit';
  export const withdraw = 'env-manager:withdraw';
  export const review = 'env-manager:review';
  export const approve = 'env-manager:approve';
  export const reject = 'env-manager:reject';
}

/**
 * This user's publish policy, as the server said last (`info`).
 */
let currentPolicy: string | null = null;

/**
 * The publish requests the server lists, refreshed on the server's
 * `request` events (and the environments they come from with them).
 */
export class RequestsModel {
  constructor(
    readonly model: EnvManagerModel,
    events?: Event.Stream
  ) {
    events?.connect(this._onEvent, this);
    model.changed.connect(() => {
      if (!model.info) {
        return; // reconnecting: keep what the server said last
      }
      currentPolicy = model.info.publish_policy ?? null;
      const canApprove = !!model.info.can_approve;
      if (canApprove !== this._canApprove) {
        this._canApprove = canApprove;
        void this.refresh();
      }
    }, this);
  }

  readonly changed = new Signal<this, void>(this);

  get requests(): IPublishRequest[] {
    return this._requests;
  }

  get pending(): number {
    return this._requests.filter(r => r.status === 'pending').length;
  }

  /**
   * Requests waiting for review or being published.
   */
  get open(): number {
    return this._requests.filter(
      r => r.status === 'pending' || r.status === 'publishing'
    ).length;
  }

  get canApprove(): boolean {
    return this._canApprove;
  }

  async refresh(): Promise<void> {
    if (!this.model.info?.shared_root) {
      return;
    }
    try {
      this._requests = (await this.model.api.listRequests()).requests;
    } catch (error) {
      console.warn('env-manager: cannot list publish requests', error);
      this._requests = [];
    }
    this.changed.emit();
  }

  private _onEvent(_: unknown, emission: Event.Emission): void {
    if (emission.schema_id !== EventSchemas.request) {
      return;
    }
    const { name, draft } = emission as unknown as {
      name?: string;
      draft?: string;
    };
    void this.refresh();
    // The published environment and the draft the request came from show its status.
    for (const [scope, envName] of [
      ['local', draft],
      ['local', name],
      ['shared', name]
    ] as [Scope, string | undefined][]) {
      if (envName && this.model.get({ scope, name: envName })) {
        void this.model.reload({ scope, name: envName });
      }
    }
  }

  private _requests: IPublishRequest[] = [];
  private _canApprove = false;
}

/**
 * The list of requests: requester, reason, time, status; a click reviews.
 */
export function RequestsList(props: {
  requests: RequestsModel;
  trans: TranslationBundle;
  onReview: (id: string) => void;
}): JSX.Element {
  const { requests, trans } = props;
  const open = requests.requests.filter(
    r => r.status === 'pending' || r.status === 'publishing'
  );
  if (open.length === 0) {
    return (
      <p className="jp-EnvManager-Empty">
        {trans.__('No request waits for review.')}
      </p>
    );
  }
  return (
    <ul className="jp-EnvManager-Requests" aria-label={trans.__('Requests')}>
      {open.map(r => (
        <li key={r.id} className="jp-EnvManager-Request" data-id={r.id}>
          <button
            type="button"
            className="jp-EnvManager-RequestSummary"
            onClick={() => props.onReview(r.id)}
            title={trans.__('Review request %1', r.id)}
          >
            <span className="jp-EnvManager-RequestName">
              {r.name} v{r.version}
            </span>
            <span className={`jp-EnvManager-Badge jp-mod-${r.status}`}>
              {r.status}
            </span>
          </button>
          <div className="jp-EnvManager-RequestMeta">
            <span>{r.requester}</span>
            <span title={fullTime(r.created_at)}>
              {humanTime(r.created_at)}
            </span>
          </div>
          <p className="jp-EnvManager-RequestReason">{r.reason}</p>
        </li>
      ))}
    </ul>
  );
}

/**
 * The "Requests" section of the panel, shown to approvers, with the number
 * of pending requests in its title.
 */
export class RequestsSection extends PanelWithToolbar {
  constructor(options: {
    requests: RequestsModel;
    trans: TranslationBundle;
    onReview: (id: string) => void;
  }) {
    super();
    const { requests, trans } = options;
    this.id = 'jp-EnvManager-section-requests';
    this.addClass('jp-EnvManager-RequestsSection');
    this.addClass('jp-mod-requests');
    const body = ReactWidget.create(
      <UseSignal signal={requests.changed}>
        {() => (
          <RequestsList
            requests={requests}
            trans={trans}
            onReview={options.onReview}
          />
        )}
      </UseSignal>
    );
    body.addClass('jp-EnvManager-StoreBody');
    this.addWidget(body);
    const sync = () => {
      const count = requests.pending;
      this.title.label =
        count > 0 ? trans.__('Requests (%1)', count) : trans.__('Requests');
      this.title.caption = trans.__(
        'Publish requests waiting for your review: %1',
        count
      );
      this.node.dataset.pending = String(count);
    };
    requests.changed.connect(sync);
    sync();
  }
}

/**
 * The publishing commands: submit and withdraw on a draft, review, approve
 * and reject a request. Policy comes from the server (`actions`, `info`).
 */
export function addPublishingCommands(
  app: JupyterFrontEnd,
  options: {
    model: EnvManagerModel;
    requests: RequestsModel;
    trans: TranslationBundle;
  }
): void {
  const { commands, shell } = app;
  const { model, requests, trans } = options;
  const envOf = (args: ReadonlyPartialJSONObject): IEnv | undefined =>
    typeof args.scope === 'string' && typeof args.name === 'string'
      ? model.get({ scope: args.scope as Scope, name: args.name })
      : undefined;
  const why = (env: IEnv | undefined, action: string): string => {
    const state = (
      env?.actions as
        Record<string, { allowed: boolean; reason: string | null }> | undefined
    )?.[action];
    if (!state) {
      return trans.__('Select an environment first');
    }
    return state.allowed ? '' : state.reason || trans.__('Not allowed');
  };
  const fail = (title: string, error: unknown) =>
    Notification.error(`${title}: ${(error as Error).message ?? error}`, {
      autoClose: false
    });
  const after = async (ref: IEnvRef | null) => {
    await requests.refresh();
    if (ref) {
      await model.reload(ref);
    }
  };

  commands.addCommand(PublishCommandIDs.submit, {
    label: trans.__('Submit for publish'),
    caption: args =>
      why(envOf(args), 'submit') ||
      trans.__('Ask an approver to publish this draft to the team'),
    isEnabled: args => !why(envOf(args), 'submit'),
    execute: async args => {
      const env = envOf(args);
      if (!env) {
        return;
      }
      const answer = await InputDialog.getText({
        title: trans.__('Submit %1 for publishing', env.name),
        label: trans.__('Why does the team need it? (required)'),
        placeholder: trans.__('Reason'),
        okLabel: trans.__('Submit')
      });
      if (!answer.button.accept) {
        return;
      }
      const reason = (answer.value ?? '').trim();
      if (!reason) {
        Notification.warning(trans.__('A reason is required to submit.'));
        return;
      }
      try {
        const req = await model.api.submitRequest(env, reason);
        Notification.success(
          trans.__('%1 v%2 submitted for review', env.name, req.version),
          { autoClose: 5000 }
        );
        await after(env);
      } catch (error) {
        fail(trans.__('Submit failed'), error);
      }
    }
  });

  commands.addCommand(PublishCommandIDs.withdraw, {
    label: args =>
      envOf(args)?.lifecycle?.status === 'rejected'
        ? trans.__('Dismiss')
        : trans.__('Withdraw'),
    caption: args =>
      why(envOf(args), 'withdraw') ||
      trans.__('Withdraw the publish request (or dismiss its rejection)'),
    isEnabled: args => !why(envOf(args), 'withdraw'),
    execute: async args => {
      const env = envOf(args);
      const id = env?.lifecycle?.request?.id;
      if (!env || !id) {
        return;
      }
      try {
        await model.api.decideRequest(id, 'withdraw');
        await after(env);
      } catch (error) {
        fail(trans.__('Withdraw failed'), error);
      }
    }
  });

  const reviews = new Map<string, MainAreaWidget<ReactWidget>>();
  commands.addCommand(PublishCommandIDs.review, {
    label: trans.__('Review publish request'),
    execute: args => {
      const id = String(args.id ?? '');
      const open = reviews.get(id);
      if (open && !open.isDisposed) {
        shell.activateById(open.id);
        return;
      }
      const content = ReactWidget.create(
        <ReviewView
          api={model.api}
          id={id}
          trans={trans}
          changed={requests.changed}
          onApprove={() => commands.execute(PublishCommandIDs.approve, { id })}
          onReject={() => commands.execute(PublishCommandIDs.reject, { id })}
          canApprove={() => requests.canApprove}
        />
      );
      content.addClass('jp-EnvManager-Review');
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-EnvManager-review-${id}`;
      widget.title.label = trans.__('Review %1', id);
      widget.title.icon = envManagerIcon;
      widget.title.closable = true;
      reviews.set(id, widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    }
  });

  commands.addCommand(PublishCommandIDs.approve, {
    label: trans.__('Approve and publish'),
    execute: async args => {
      const id = String(args.id ?? '');
      try {
        const req = await model.api.decideRequest(id, 'approve');
        Notification.info(
          trans.__('Request %1: %2', id, req.detail ?? req.status),
          { autoClose: 5000 }
        );
      } catch (error) {
        fail(trans.__('Approve failed'), error);
      }
      await after(null);
    }
  });

  commands.addCommand(PublishCommandIDs.reject, {
    label: trans.__('Reject'),
    execute: async args => {
      const id = String(args.id ?? '');
      const answer = await InputDialog.getText({
        title: trans.__('Reject request %1', id),
        label: trans.__('Reason (shown to the requester, required)'),
        placeholder: trans.__('Reason'),
        okLabel: trans.__('Reject')
      });
      if (!answer.button.accept) {
        return;
      }
      const reason = (answer.value ?? '').trim();
      if (!reason) {
        await showDialog({
          title: trans.__('A reason is required'),
          buttons: [Dialog.okButton()]
        });
        return;
      }
      try {
        await model.api.decideRequest(id, 'reject', reason);
      } catch (error) {
        fail(trans.__('Reject failed'), error);
      }
      await after(null);
    }
  });
}

/**
 * Where an environment is on its way to the team (draft, pending,
 * published, rejected...), with the detail as its tooltip.
 */
export function LifecycleBadge(props: {
  env: IEnv;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { env, trans } = props;
  const lifecycle = env.lifecycle;
  if (!lifecycle || !env.managed) {
    return null;
  }
  // Only what differs from the usual (a draft here, published there).
  const shown = ['pending', 'rejected'];
  if (!shown.includes(lifecycle.status)) {
    return lifecycle.detail ? (
      <span className="jp-EnvManager-InUse" title={lifecycle.detail}>
        {lifecycle.detail}
      </span>
    ) : null;
  }
  return (
    <span
      className={`jp-EnvManager-Lifecycle jp-mod-${lifecycle.status}`}
      title={lifecycle.detail ?? lifecycle.status}
    >
      {trans.__(lifecycle.status)}
    </span>
  );
}

/**
 * The rejection's reason (or why a request is outdated) on the draft.
 */
export function LifecycleNote(props: {
  env: IEnv;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { env, trans } = props;
  const lifecycle = env.lifecycle;
  if (
    !lifecycle?.detail ||
    !['rejected', 'pending'].includes(lifecycle.status)
  ) {
    return null;
  }
  return (
    <>
      <dt>
        {lifecycle.status === 'rejected'
          ? trans.__('Rejected')
          : trans.__('Request')}
      </dt>
      <dd className="jp-EnvManager-LifecycleNote">{lifecycle.detail}</dd>
    </>
  );
}

/**
 * The publishing buttons of a row: Submit where the server's policy routes
 * the user through a review (or to resubmit a rejected draft), Withdraw
 * while a request can be withdrawn.
 */
export function publishingButtons(env: IEnv): string[] {
  const policy = currentPolicy;
  const allowed = (action: string) =>
    !!(env.actions as Record<string, { allowed: boolean }> | undefined)?.[
      action
    ]?.allowed;
  const buttons: string[] = [];
  if (
    allowed('submit') &&
    (policy === 'approval' || env.lifecycle?.status === 'rejected')
  ) {
    buttons.push(PublishCommandIDs.submit);
  }
  if (allowed('withdraw')) {
    buttons.push(PublishCommandIDs.withdraw);
  }
  return buttons;
}
