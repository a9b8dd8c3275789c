import { normalizeVersion, versionsMatch } from '../version';

describe('versionsMatch', () => {
  it.each([
    ['0.1.0', '0.1.0', true],
    ['0.1.0a1', '0.1.0-alpha.1', true],
    ['0.2.0b2', '0.2.0-beta.2', true],
    ['1.0.0rc1', '1.0.0-rc.1', true],
    ['0.1.0', '0.1.1', false],
    ['dev', '0.1.0', false]
  ])('%s vs %s -> %s', (server, frontend, expected) => {
    expect(versionsMatch(server, frontend)).toBe(expected);
  });

  it('normalizes both spellings alike', () => {
    expect(normalizeVersion('0.1.0-alpha.1')).toBe(normalizeVersion('0.1.0a1'));
  });
});
