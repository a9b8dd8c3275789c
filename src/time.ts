import { Time } from '@jupyterlab/coreutils';

/**
 * "3 minutes ago" for a server timestamp, or '' if it cannot be read.
 */
export function humanTime(value: string | null | undefined): string {
  return isValid(value) ? Time.formatHuman(value!) : '';
}

/**
 * The full local date and time of a server timestamp, or ''.
 */
export function fullTime(value: string | null | undefined): string {
  return isValid(value) ? Time.format(value!) : '';
}

function isValid(value: string | null | undefined): boolean {
  return !!value && Number.isFinite(new Date(value).getTime());
}
