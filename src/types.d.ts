declare module '*.svg' {
  const value: string;
  export default value;
}

/**
 * CommonJS `require`, kept by tsc and resolved by the bundler (used to read
 * package.json from outside `src/`).
 */
declare function require(id: string): unknown;
