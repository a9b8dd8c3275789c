import * as React from 'react';

/**
 * One column of a table head: its label, and a class for its cells.
 */
export type Column = string | { label: string; className?: string };

/**
 * The head of the panel's tables: the named columns, then an actions column
 * whose label only screen readers hear (its cells hold buttons).
 */
export function TableHead(props: {
  columns: Column[];
  actionsLabel: string;
}): JSX.Element {
  return (
    <thead>
      <tr>
        {props.columns.map(column => {
          const { label, className } =
            typeof column === 'string'
              ? { label: column, className: '' }
              : column;
          return (
            <th key={label} scope="col" className={className || undefined}>
              {label}
            </th>
          );
        })}
        <th scope="col">
          <span className="jp-EnvManager-VisuallyHidden">
            {props.actionsLabel}
          </span>
        </th>
      </tr>
    </thead>
  );
}
