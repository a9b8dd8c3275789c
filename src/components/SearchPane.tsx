import type { TranslationBundle } from '@jupyterlab/translation';
import { HTMLSelect, InputGroup } from '@jupyterlab/ui-components';
import * as React from 'react';
import type { IPackage, ISearchResult } from '../tokens';
import { shortChannel } from '../widgets/PackagesLogic';
import { ActionButton } from './PackagesTable';
import { TableHead } from './TableHead';

/**
 * How many versions a result lists before "+N more".
 */
const SHOWN_VERSIONS = 6;

/**
 * The search box and its results: packages whose names start with what was
 * typed, in the environment's channels, with their versions; "Add to spec"
 * per result (a version may be chosen, default any).
 */
export function SearchPane(props: {
  trans: TranslationBundle;
  query: string;
  results: ISearchResult[] | null;
  channels: string[];
  error: string | null;
  busy: boolean;
  /**
   * The installed packages, to say which results are already there.
   */
  installed: IPackage[];
  /**
   * Why packages cannot be added now ('' when they can).
   */
  addBlocked: string;
  onSearch: (query: string) => void;
  onAdd: (name: string, version: string | null) => void;
}): JSX.Element {
  const { trans, results } = props;
  const [typed, setTyped] = React.useState(props.query);
  const [chosen, setChosen] = React.useState<Record<string, string>>({});
  const timer = React.useRef<number | null>(null);
  React.useEffect(
    () => () => {
      if (timer.current !== null) {
        window.clearTimeout(timer.current);
      }
    },
    []
  );
  const onChange = (event: React.ChangeEvent<HTMLInputElement>) => {
    const value = event.target.value;
    setTyped(value);
    if (timer.current !== null) {
      window.clearTimeout(timer.current);
    }
    // One request once the user pauses, not one per key.
    timer.current = window.setTimeout(() => props.onSearch(value), 300);
  };
  const installed = new Map(
    props.installed
      .filter(pkg => pkg.kind === 'conda')
      .map(pkg => [pkg.name, pkg])
  );
  return (
    <div className="jp-EnvManager-Search">
      <div className="jp-EnvManager-PackagesBar">
        <InputGroup
          className="jp-EnvManager-SearchInput"
          type="search"
          placeholder={trans.__('Search packages by name prefix')}
          aria-label={trans.__('Search packages by name prefix')}
          value={typed}
          onChange={onChange}
          onKeyDown={event => {
            if (event.key === 'Enter') {
              if (timer.current !== null) {
                window.clearTimeout(timer.current);
              }
              props.onSearch(typed);
            }
          }}
          rightIcon="ui-components:search"
        />
        {props.busy && (
          <span className="jp-EnvManager-Muted">{trans.__('Searching…')}</span>
        )}
      </div>
      {props.error && (
        <p className="jp-EnvManager-Error" role="alert">
          {props.error}
        </p>
      )}
      {results && results.length === 0 && !props.error && (
        <p className="jp-EnvManager-Empty">
          {trans.__(
            'No package starts with "%1" in %2.',
            props.query,
            props.channels.join(', ')
          )}
        </p>
      )}
      {results && results.length > 0 && (
        <table className="jp-EnvManager-SearchResults">
          <TableHead
            columns={[
              trans.__('Name'),
              trans.__('Versions'),
              trans.__('Channels'),
              trans.__('Version to ask for')
            ]}
            actionsLabel={trans.__('Actions')}
          />
          <tbody>
            {results.map(result => {
              const have = installed.get(result.name);
              const more = result.versions.length - SHOWN_VERSIONS;
              const version = chosen[result.name] ?? '';
              return (
                <tr key={result.name} data-name={result.name}>
                  <td className="jp-EnvManager-PackageName">
                    {result.name}
                    {have && (
                      <span
                        className="jp-EnvManager-Badge jp-mod-installed"
                        title={trans.__(
                          'Version %1 is installed',
                          have.version
                        )}
                      >
                        {trans.__('installed %1', have.version)}
                      </span>
                    )}
                  </td>
                  <td title={result.versions.join(', ')}>
                    {result.versions.slice(0, SHOWN_VERSIONS).join(', ')}
                    {more > 0 && trans.__(' (+%1 more)', more)}
                  </td>
                  <td title={result.channels.join('\n')}>
                    {result.channels.map(shortChannel).join(', ')}
                  </td>
                  <td>
                    <HTMLSelect
                      aria-label={trans.__('Version of %1', result.name)}
                      value={version}
                      onChange={event =>
                        setChosen({
                          ...chosen,
                          [result.name]: event.target.value
                        })
                      }
                      options={[
                        { value: '', label: trans.__('any (latest)') },
                        ...result.versions.map(v => ({ value: v, label: v }))
                      ]}
                    />
                  </td>
                  <td>
                    <ActionButton
                      label={trans.__('Add to spec')}
                      why={props.addBlocked}
                      caption={trans.__(
                        'Add %1 to the spec; you review the change before building',
                        result.name
                      )}
                      ariaLabel={trans.__('Add %1 to the spec', result.name)}
                      onClick={() => props.onAdd(result.name, version || null)}
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
