import { ServerConnection } from '@jupyterlab/services';

/**
 * A MOCK of the jupyter_env_manager REST API for jest: an in-memory route
 * table answering through ServerConnection's `fetch` option. It stands in for
 * the real server, which jest cannot start; Galata tests use the real one.
 */
export class MockEnvServer {
  /**
   * Every request received (path below env-manager/, query separately:
   * ServerConnection appends a cache-busting timestamp to it).
   */
  readonly calls: {
    method: string;
    path: string;
    query: URLSearchParams;
    body: unknown;
    cache: RequestCache;
  }[] = [];

  /**
   * Answer `METHOD path` (exact, query string excluded) with a handler.
   */
  on(
    method: string,
    path: string,
    handler: (
      request: MockEnvServer.IRequest
    ) => MockEnvServer.IReply | Promise<MockEnvServer.IReply>
  ): this {
    this._routes.set(`${method} ${path}`, handler);
    return this;
  }

  /**
   * Server settings whose fetch goes to this mock.
   */
  get settings(): ServerConnection.ISettings {
    return ServerConnection.makeSettings({
      baseUrl: MockEnvServer.BASE_URL,
      fetch: (input: RequestInfo, init?: RequestInit) =>
        this._fetch(input, init)
    });
  }

  private async _fetch(
    input: RequestInfo,
    init?: RequestInit
  ): Promise<Response> {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const prefix = new URL(MockEnvServer.BASE_URL).pathname + 'env-manager/';
    if (!url.pathname.startsWith(prefix)) {
      return new Response('not found', { status: 404 });
    }
    const path = decodeURI(url.pathname.slice(prefix.length));
    const text = await request.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text; // not JSON: an upload (a bundle)
    }
    this.calls.push({
      method: request.method,
      path,
      query: url.searchParams,
      body,
      cache: init?.cache ?? request.cache
    });
    const handler = this._routes.get(`${request.method} ${path}`);
    if (!handler) {
      return new Response('<html>404: Not Found</html>', {
        status: 404,
        statusText: 'Not Found'
      });
    }
    const reply = await handler({ path, query: url.searchParams, body });
    const status = reply.status ?? 200;
    const headers = new Headers(reply.headers ?? {});
    if (reply.text !== undefined) {
      return new Response(reply.text, { status, headers });
    }
    if (reply.json === undefined) {
      return new Response(null, { status, headers });
    }
    headers.set('Content-Type', 'application/json');
    return new Response(JSON.stringify(reply.json), { status, headers });
  }

  private _routes = new Map<
    string,
    (
      request: MockEnvServer.IRequest
    ) => MockEnvServer.IReply | Promise<MockEnvServer.IReply>
  >();
}

export namespace MockEnvServer {
  export const BASE_URL = 'http://localhost:8888/lab-base/';

  /**
   * A 202 as the server answers a build, revert or copy: the build (and
   * `extra` fields) with the build's URL in `Location`.
   */
  export function accepted(
    scope: string,
    name: string,
    build: { version: number },
    extra: Record<string, unknown> = {}
  ): IReply {
    const path = new URL(BASE_URL).pathname;
    return {
      status: 202,
      json: { ...extra, build },
      headers: {
        Location: `${path}env-manager/environments/${scope}/${name}/builds/${build.version}`
      }
    };
  }

  export interface IRequest {
    path: string;
    query: URLSearchParams;
    body: unknown;
  }

  export interface IReply {
    status?: number;
    json?: unknown;
    text?: string;
    headers?: Record<string, string>;
  }
}
