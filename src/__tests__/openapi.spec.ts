/**
 * The REST payload types of src/tokens.ts against docs/openapi.yaml: the same
 * fields, the same enums, the same nullability. The types are read from the
 * source with the TypeScript compiler API, so any drift of either side fails.
 */
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');
const TOKENS = path.join(ROOT, 'src', 'tokens.ts');
const OPENAPI = path.join(ROOT, 'docs', 'openapi.yaml');

type Schema = Record<string, any>;

/**
 * A type, from either side, reduced to what both can say.
 */
interface IShape {
  kind: 'string' | 'number' | 'boolean' | 'array' | 'object' | 'any';
  nullable: boolean;
  /**
   * The allowed values of a string (without null), when restricted.
   */
  enum?: string[];
  items?: IShape;
  /**
   * The fields of an object, when known.
   */
  fields?: Map<string, IShape>;
  /**
   * The type of every value of a map-like object (`Record<K, V>`).
   */
  values?: IShape;
  /**
   * The fields a schema requires.
   */
  required?: string[];
  /**
   * Where it comes from, for messages.
   */
  origin: string;
  /**
   * The interface it is, on the TypeScript side.
   */
  typeName?: string;
}

// ---- TypeScript side --------------------------------------------------------

const source = ts.createSourceFile(
  TOKENS,
  fs.readFileSync(TOKENS, 'utf-8'),
  ts.ScriptTarget.ES2020,
  true
);
const declarations = new Map<string, ts.Node>();
source.forEachChild(node => {
  if (
    ts.isInterfaceDeclaration(node) ||
    ts.isTypeAliasDeclaration(node) ||
    ts.isModuleDeclaration(node)
  ) {
    declarations.set(node.name.getText(source), node);
  } else if (ts.isVariableStatement(node)) {
    for (const decl of node.declarationList.declarations) {
      declarations.set(decl.name.getText(source), decl);
    }
  }
});

function stringsOfConstArray(name: string): string[] {
  const decl = declarations.get(name);
  let init = decl && ts.isVariableDeclaration(decl) ? decl.initializer : null;
  while (init && ts.isAsExpression(init)) {
    init = init.expression;
  }
  if (!init || !ts.isArrayLiteralExpression(init)) {
    throw new Error(`${name} is not a constant array of strings`);
  }
  return init.elements.map(e => (e as ts.StringLiteral).text);
}

function tsShape(node: ts.TypeNode, origin: string): IShape {
  if (ts.isParenthesizedTypeNode(node)) {
    return tsShape(node.type, origin);
  }
  if (ts.isUnionTypeNode(node)) {
    const members = node.types.filter(
      t =>
        !(
          ts.isLiteralTypeNode(t) &&
          t.literal.kind === ts.SyntaxKind.NullKeyword
        )
    );
    const nullable = members.length < node.types.length;
    const shapes = members.map(t => tsShape(t, origin));
    if (shapes.length === 1) {
      return { ...shapes[0], nullable: nullable || shapes[0].nullable };
    }
    if (shapes.every(s => s.kind === 'string' && s.enum)) {
      return {
        kind: 'string',
        nullable,
        enum: shapes.flatMap(s => s.enum!),
        origin
      };
    }
    throw new Error(`${origin}: a union this test does not know`);
  }
  if (ts.isLiteralTypeNode(node) && ts.isStringLiteral(node.literal)) {
    return {
      kind: 'string',
      nullable: false,
      enum: [node.literal.text],
      origin
    };
  }
  if (ts.isArrayTypeNode(node)) {
    return {
      kind: 'array',
      nullable: false,
      items: tsShape(node.elementType, `${origin}[]`),
      origin
    };
  }
  if (ts.isTypeLiteralNode(node)) {
    return {
      kind: 'object',
      nullable: false,
      fields: tsFields(node.members, origin),
      origin
    };
  }
  if (
    ts.isIndexedAccessTypeNode(node) &&
    ts.isTypeQueryNode(
      ts.isParenthesizedTypeNode(node.objectType)
        ? node.objectType.type
        : node.objectType
    )
  ) {
    // (typeof CONST)[number]: the strings of a constant array.
    const query = (
      ts.isParenthesizedTypeNode(node.objectType)
        ? node.objectType.type
        : node.objectType
    ) as ts.TypeQueryNode;
    return {
      kind: 'string',
      nullable: false,
      enum: stringsOfConstArray(query.exprName.getText(source)),
      origin
    };
  }
  switch (node.kind) {
    case ts.SyntaxKind.StringKeyword:
      return { kind: 'string', nullable: false, origin };
    case ts.SyntaxKind.NumberKeyword:
      return { kind: 'number', nullable: false, origin };
    case ts.SyntaxKind.BooleanKeyword:
      return { kind: 'boolean', nullable: false, origin };
    case ts.SyntaxKind.UnknownKeyword:
    case ts.SyntaxKind.AnyKeyword:
      return { kind: 'any', nullable: false, origin };
  }
  if (ts.isTypeReferenceNode(node)) {
    const name = node.typeName.getText(source);
    if (name === 'Record' && node.typeArguments?.length === 2) {
      const keys = tsShape(node.typeArguments[0], `${origin} keys`);
      const values = tsShape(node.typeArguments[1], `${origin} values`);
      if (!keys.enum) {
        return { kind: 'object', nullable: false, values, origin };
      }
      return {
        kind: 'object',
        nullable: false,
        fields: new Map(
          keys.enum.map(key => [key, { ...values, origin: `${origin}.${key}` }])
        ),
        origin
      };
    }
    return tsNamed(name, origin);
  }
  throw new Error(
    `${origin}: a type this test does not know (${node.getText(source)})`
  );
}

function tsFields(
  members: ts.NodeArray<ts.TypeElement>,
  origin: string
): Map<string, IShape> {
  const fields = new Map<string, IShape>();
  for (const member of members) {
    if (ts.isPropertySignature(member) && member.type) {
      const name = member.name.getText(source);
      fields.set(name, tsShape(member.type, `${origin}.${name}`));
    }
  }
  return fields;
}

function tsNamed(name: string, origin = name): IShape {
  const decl = declarations.get(name);
  if (decl && ts.isInterfaceDeclaration(decl)) {
    return {
      kind: 'object',
      nullable: false,
      fields: tsFields(decl.members, name),
      origin,
      typeName: name
    };
  }
  if (decl && ts.isTypeAliasDeclaration(decl)) {
    return tsShape(decl.type, origin);
  }
  throw new Error(`${origin}: no interface or type ${name} in src/tokens.ts`);
}

// ---- OpenAPI side -----------------------------------------------------------

const spec = yaml.load(fs.readFileSync(OPENAPI, 'utf-8')) as Schema;

function resolve(schema: Schema): Schema {
  while (schema.$ref) {
    const parts = (schema.$ref as string).replace(/^#\//, '').split('/');
    const target = parts.reduce((node: Schema, part) => node[part], spec);
    const { $ref, ...rest } = schema;
    void $ref;
    schema = { ...target, ...rest };
  }
  if (schema.allOf) {
    const { allOf, ...rest } = schema;
    const merged: Schema = {
      ...rest,
      properties: { ...(rest.properties ?? {}) }
    };
    for (const part of (allOf as Schema[]).map(resolve)) {
      for (const [key, value] of Object.entries(part)) {
        if (key === 'properties') {
          Object.assign(merged.properties, value);
        } else if (key === 'required') {
          merged.required = [
            ...(merged.required ?? []),
            ...(value as string[])
          ];
        } else if (!(key in rest)) {
          merged[key] = value;
        }
      }
    }
    if (Object.keys(merged.properties).length === 0) {
      delete merged.properties;
    }
    schema = merged;
  }
  return schema;
}

function apiShape(raw: Schema, origin: string): IShape {
  const schema = resolve(raw);
  const nullable =
    schema.nullable === true ||
    (Array.isArray(schema.enum) && schema.enum.includes(null));
  const enumValues = Array.isArray(schema.enum)
    ? (schema.enum as unknown[]).filter(v => v !== null).map(String)
    : undefined;
  const type = schema.type ?? (schema.properties ? 'object' : undefined);
  switch (type) {
    case 'string':
      return { kind: 'string', nullable, enum: enumValues, origin };
    case 'integer':
    case 'number':
      return { kind: 'number', nullable, origin };
    case 'boolean':
      return { kind: 'boolean', nullable, origin };
    case 'array':
      return {
        kind: 'array',
        nullable,
        items: schema.items ? apiShape(schema.items, `${origin}[]`) : undefined,
        origin
      };
    case 'object': {
      const shape: IShape = {
        kind: 'object',
        nullable,
        origin,
        required: schema.required
      };
      if (schema.properties) {
        shape.fields = new Map(
          Object.entries(schema.properties as Record<string, Schema>).map(
            ([name, value]) => [name, apiShape(value, `${origin}.${name}`)]
          )
        );
      }
      if (
        schema.additionalProperties &&
        typeof schema.additionalProperties === 'object'
      ) {
        shape.values = apiShape(schema.additionalProperties, `${origin}.*`);
      }
      return shape;
    }
    default:
      return { kind: 'any', nullable, origin };
  }
}

function component(name: string): Schema {
  return { $ref: `#/components/schemas/${name}` };
}

function jsonBody(operation: Schema, status?: string): Schema {
  const content = status
    ? operation.responses[status].content
    : operation.requestBody.content;
  return content['application/json'].schema;
}

// ---- Comparison ---------------------------------------------------------------

/**
 * Fields the server sends that the frontend does not read, by interface
 * (keep it short: each is a field the panel chose not to type).
 */
const UNTYPED = new Set([
  'IBuild.created_at',
  'IBuild.user',
  'IBuild.source',
  'IBuild.phases'
]);

function compare(
  ts: IShape,
  api: IShape,
  name: string,
  problems: string[]
): void {
  if (api.kind === 'any' || ts.kind === 'any') {
    return;
  }
  if (ts.kind !== api.kind) {
    problems.push(
      `${name}: ${ts.kind} in tokens.ts, ${api.kind} in openapi.yaml`
    );
    return;
  }
  if (ts.nullable !== api.nullable) {
    problems.push(
      `${name}: ${ts.nullable ? 'nullable' : 'not nullable'} in tokens.ts, ` +
        `${api.nullable ? 'nullable' : 'not nullable'} in openapi.yaml`
    );
  }
  if (ts.kind === 'string' && (ts.enum || api.enum)) {
    const a = [...(ts.enum ?? ['(any string)'])].sort();
    const b = [...(api.enum ?? ['(any string)'])].sort();
    if (a.join('|') !== b.join('|')) {
      problems.push(
        `${name}: values ${a.join(', ')} in tokens.ts, ${b.join(', ')} in openapi.yaml`
      );
    }
  }
  if (ts.kind === 'array' && ts.items && api.items) {
    compare(ts.items, api.items, `${name}[]`, problems);
  }
  if (ts.kind === 'object') {
    compareObjects(ts, api, name, problems);
  }
}

function compareObjects(
  ts: IShape,
  api: IShape,
  name: string,
  problems: string[]
): void {
  if (ts.fields && api.fields) {
    for (const [field, shape] of ts.fields) {
      const other = api.fields.get(field);
      if (!other) {
        problems.push(`${name}.${field}: in tokens.ts, not in openapi.yaml`);
      } else {
        compare(shape, other, `${name}.${field}`, problems);
      }
    }
    for (const field of api.fields.keys()) {
      if (!ts.fields.has(field) && !UNTYPED.has(`${ts.typeName}.${field}`)) {
        problems.push(`${name}.${field}: in openapi.yaml, not in tokens.ts`);
      }
    }
  } else if (ts.fields && api.values) {
    // A map in the schema: every field of the type is one of its values, and
    // the fields are those it requires.
    for (const [field, shape] of ts.fields) {
      compare(shape, api.values, `${name}.${field}`, problems);
    }
    const a = [...ts.fields.keys()].sort().join(', ');
    const b = [...(api.required ?? [])].sort().join(', ');
    if (a !== b) {
      problems.push(
        `${name}: keys ${a} in tokens.ts, required ${b} in openapi.yaml`
      );
    }
  } else if (ts.fields && !api.fields) {
    problems.push(
      `${name}: fields in tokens.ts, none described in openapi.yaml`
    );
  }
}

function problemsOf(
  tsType: string | IShape,
  schema: Schema,
  name: string
): string[] {
  const problems: string[] = [];
  const shape = typeof tsType === 'string' ? tsNamed(tsType) : tsType;
  compare(shape, apiShape(schema, name), name, problems);
  return problems;
}

const paths = spec.paths as Record<string, Record<string, Schema>>;
const envView = paths['/environments/{scope}/{name}'].get;

describe('tokens.ts against docs/openapi.yaml', () => {
  it.each([
    ['IServerInfo', 'Info', component('Info')],
    ['IBuild', 'Build', component('Build')],
    ['IEnv', 'Env', jsonBody(envView, '200')],
    ['ICreateEnvRequest', 'CreateBody', component('CreateBody')],
    ['IEnvPatch', 'SpecFields', component('SpecFields')],
    [
      'IImportEnvRequest',
      'ImportBody',
      jsonBody(paths['/environments/import'].post)
    ],
    ['IPinResult', 'Pin', component('Pin')],
    ['IPinRequest', 'PinBody', jsonBody(paths['/pins'].post)],
    ['IPackageList', 'Packages', component('Packages')],
    ['IPackageDiff', 'Diff', component('Diff')],
    ['ISearchReply', 'Search', component('Search')],
    ['IPinMetadata', 'PinCheckBody', jsonBody(paths['/pins/check'].post)],
    ['IGcResult', 'Collected', component('Collected')],
    ['ILifecycle', 'Lifecycle', component('Lifecycle')],
    ['IPublishRequest', 'PublishRequest', component('PublishRequest')],
    ['IPolicyCheck', 'PolicyCheck', component('PolicyCheck')],
    ['IAuditEvent', 'AuditEvent', component('AuditEvent')],
    ['IRequestChanges', 'RequestChanges', component('RequestChanges')]
  ])('%s matches %s', (tsType, name, schema) => {
    expect(problemsOf(tsType, schema, name)).toEqual([]);
  });

  it('has the same build and export formats as the routes', () => {
    const exportFormat = paths[
      '/environments/{scope}/{name}/export'
    ].get.parameters.find((p: Schema) => p.name === 'format').schema;
    expect(problemsOf('ExportFormat', exportFormat, 'export format')).toEqual(
      []
    );
    expect(problemsOf('Scope', component('Scope'), 'Scope')).toEqual([]);
  });

  it('lists every action of an environment view with allowed and reason', () => {
    const env = resolve(jsonBody(envView, '200'));
    expect(env.properties.actions).toBeDefined();
    expect(
      problemsOf('EnvActions', env.properties.actions, 'Env.actions')
    ).toEqual([]);
  });

  it('fails when an action is missing on either side', () => {
    const actions = tsNamed('EnvActions');
    const fewer: IShape = { ...actions, fields: new Map(actions.fields) };
    fewer.fields!.delete('export');
    const env = resolve(jsonBody(envView, '200'));
    expect(problemsOf(fewer, env.properties.actions, 'Env.actions')).toEqual([
      'Env.actions: keys activate, adopt, approve, build, cancel, copy_local, copy_shared, deactivate, delete, edit, reject, revert, submit, withdraw in tokens.ts, required activate, adopt, approve, build, cancel, copy_local, copy_shared, deactivate, delete, edit, export, reject, revert, submit, withdraw in openapi.yaml'
    ]);
  });

  it('fails on drift (the comparison itself)', () => {
    const drifted: IShape = {
      ...tsNamed('IBuild'),
      fields: new Map(tsNamed('IBuild').fields)
    };
    drifted.fields!.set('phase', {
      kind: 'string',
      nullable: true,
      origin: 'x'
    });
    drifted.fields!.set('kind', {
      kind: 'string',
      nullable: false,
      enum: ['build', 'revert', 'copy'],
      origin: 'IBuild.kind'
    });
    drifted.fields!.set('extra', {
      kind: 'string',
      nullable: false,
      origin: 'x'
    });
    drifted.fields!.delete('error');
    expect(problemsOf(drifted, component('Build'), 'Build')).toEqual([
      'Build.phase: values (any string) in tokens.ts, download, kernel, link, pip, solve, verify in openapi.yaml',
      'Build.kind: values build, copy, revert in tokens.ts, adopt, build, copy, revert in openapi.yaml',
      'Build.extra: in tokens.ts, not in openapi.yaml',
      'Build.error: in openapi.yaml, not in tokens.ts'
    ]);
  });
});
