import type { TranslationBundle } from '@jupyterlab/translation';

/**
 * Translated words for the server's build statuses and kinds (the raw value
 * is kept for anything unknown).
 */
export function statusLabel(trans: TranslationBundle, status: string): string {
  const labels: Record<string, string> = {
    queued: trans.__('queued'),
    running: trans.__('running'),
    succeeded: trans.__('succeeded'),
    failed: trans.__('failed'),
    cancelled: trans.__('cancelled'),
    interrupted: trans.__('interrupted'),
    build: trans.__('build'),
    revert: trans.__('revert'),
    copy: trans.__('copy'),
    adopt: trans.__('adopt')
  };
  return labels[status] ?? status;
}
