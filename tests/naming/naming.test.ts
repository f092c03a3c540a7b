// Names and the validators at every boundary (SPEC §2 naming, §5 bad input).
import { afterEach, describe, expect, it } from 'vitest';

import { lockPath } from '../../lib/lockfiles.js';
import { InputError } from '../../lib/errors.js';
import { appDomain, assertDomain, depDomain, assertRecipe, domainFromServiceName, isRunApp, stackName } from '../../lib/naming.js';

afterEach(() => {
  delete process.env.CCCI_BASE_DOMAIN;
});

describe('run-app names', () => {
  it('derives <recipe[:4]>-<sha1(recipe|pr|ref)[:6]>.<base>, as the Python runner does', () => {
    // sha1("keycloak|42|deadbeef")[:6] computed by Python's hashlib.
    expect(appDomain('keycloak', 42, 'deadbeef')).toBe('keyc-cfca97.ci.commoninternet.net');
    expect(appDomain('keycloak', '42', 'deadbeef')).toBe('keyc-cfca97.ci.commoninternet.net');
    expect(isRunApp(appDomain('keycloak', 42, 'deadbeef'))).toBe(true);
  });

  it('drops - and _ from the prefix so the janitor can still recognise the app', () => {
    // sha1("a-b-c|7|main")[:6] = 181299; the Python runner would have made "a-b--181299…".
    expect(appDomain('a-b-c', 7, 'main')).toBe('ab-181299.ci.commoninternet.net');
    expect(isRunApp(appDomain('a_bc', 1, 'x'))).toBe(true);
  });

  it('names a dependency <first 4 of a-z0-9 of dep>-<sha1(app domain|dep)[:6]>.<base>: a run app of its own', () => {
    const app = appDomain('keycloak', 42, 'deadbeef');
    // Digests computed by Python's hashlib.
    expect(depDomain(app, 'keycloak')).toBe('keyc-180117.ci.commoninternet.net');
    expect(depDomain(app, 'my-app_x')).toBe('myap-a88e4c.ci.commoninternet.net');
    expect(isRunApp(depDomain(app, 'my-app_x'))).toBe(true);
    // Two runs of one recipe (two PRs) never share a dependency.
    expect(depDomain(appDomain('keycloak', 43, 'deadbeef'), 'keycloak')).not.toBe(depDomain(app, 'keycloak'));
    expect(() => depDomain(app, '../etc')).toThrow(/dependency recipe/);
    expect(() => depDomain('App.example', 'keycloak')).toThrow(/app domain/);
  });

  it('uses CCCI_BASE_DOMAIN, read at call time, and validates it', () => {
    process.env.CCCI_BASE_DOMAIN = 'ci.example.org';
    expect(appDomain('keycloak', 42, 'deadbeef')).toBe('keyc-cfca97.ci.example.org');
    expect(isRunApp('keyc-cfca97.ci.example.org')).toBe(true);
    expect(isRunApp('keyc-cfca97.ci.commoninternet.net')).toBe(false);
    process.env.CCCI_BASE_DOMAIN = 'CI/../etc';
    expect(() => appDomain('keycloak', 42, 'deadbeef')).toThrow(/CCCI_BASE_DOMAIN/);
  });

  it('never takes a warm/canonical app for a run app', () => {
    for (const name of [
      'warm-keycloak.ci.commoninternet.net',
      'keycloak.ci.commoninternet.net',
      'drone.ci.commoninternet.net',
      'keyc-cfca97.ci.commoninternet.net.evil.org',
      'keyc-cfca97xci.commoninternet.net',
      'KEYC-cfca97.ci.commoninternet.net',
      'keycl-cfca97.ci.commoninternet.net',
      'keyc-cfca9.ci.commoninternet.net',
    ]) {
      expect(isRunApp(name), name).toBe(false);
    }
  });

  it('maps a domain to its stack and a docker service back to its domain', () => {
    expect(stackName('keyc-cfca97.ci.commoninternet.net')).toBe('keyc-cfca97_ci_commoninternet_net');
    expect(domainFromServiceName('keyc-cfca97_ci_commoninternet_net_app')).toBe('keyc-cfca97.ci.commoninternet.net');
    expect(domainFromServiceName('keyc-cfca97_ci_commoninternet_net_db_backup')).toBe('keyc-cfca97.ci.commoninternet.net');
    expect(domainFromServiceName('warm-keycloak_ci_commoninternet_net_app')).toBeNull();
    expect(domainFromServiceName('keyc-cfca97_ci_commoninternet_net')).toBeNull(); // no service part
    expect(domainFromServiceName('keyc-cfca97_ci_example_org_app')).toBeNull(); // another base
  });

  it('trims a long stack name to 45 characters as abra does, and maps it back', () => {
    process.env.CCCI_BASE_DOMAIN = 'ci.a-rather-long-base-domain.example.org';
    const domain = appDomain('keycloak', 42, 'deadbeef');
    const stack = stackName(domain);
    expect(stack).toBe('keyc-cfca97_ci_a-rather-long-base-domain_exam');
    expect(domainFromServiceName(`${stack}_app`)).toBe(domain);
  });
});

describe('bad input is refused with a one-line error naming it', () => {
  const badDomains: [string, unknown][] = [
    ['a slash', 'ab-123456.ci/x'],
    ['..', 'ab..ci.commoninternet.net'],
    ['a path climb', '../../etc/passwd'],
    ['upper case', 'AB-123456.ci.commoninternet.net'],
    ['over 253 characters', `${`${'a'.repeat(60)}.`.repeat(4)}abcdefghij.org`],
    ['an empty string', ''],
    ['a non-string', 42],
    ['a label that starts with a hyphen', 'ab-123456.-x.org'],
    ['an empty last label', 'ab-123456.org.'],
  ];
  for (const [what, domain] of badDomains) {
    it(`domain with ${what}`, () => {
      expect(() => assertDomain(domain)).toThrow(InputError);
      expect(() => assertDomain(domain)).toThrow(/^domain /);
      expect(() => lockPath(domain as string)).toThrow(InputError);
    });
  }

  it('accepts a 253-character domain', () => {
    const domain = `${`${'a'.repeat(62)}.`.repeat(4).slice(0, 249)}.org`;
    expect(domain).toHaveLength(253);
    expect(() => assertDomain(domain)).not.toThrow();
  });

  for (const recipe of ['a/b', '../keycloak', 'key\\cloak', '.', '', 'Keycloak', 'key cloak', 'key\0cloak', '-x']) {
    it(`recipe name ${JSON.stringify(recipe)}`, () => {
      expect(() => assertRecipe(recipe)).toThrow(/recipe name/);
      expect(() => appDomain(recipe, 1, 'main')).toThrow(InputError);
    });
  }

  it('a PR that is neither a number nor a string, and a ref that is not a string', () => {
    expect(() => appDomain('keycloak', -1, 'main')).toThrow(/PR/);
    expect(() => appDomain('keycloak', null as unknown as string, 'main')).toThrow(/PR/);
    expect(() => appDomain('keycloak', 1, undefined as unknown as string)).toThrow(/ref/);
  });
});
