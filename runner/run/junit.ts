// junit.xml beside results.json: the same verdicts in the format forges and CI UIs render. One
// <testsuite> per stage, one <testcase> per health check, hook and test, plus one for the stage.
// Written by hand: the format is a few elements, and the one subtle part, escaping (with the
// characters XML 1.0 cannot carry at all), is the xmlEscape() below.
import type { Check, RunResults } from './results.js';

function xmlEscape(text: string): string {
  return text
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function testcase(className: string, check: Check): string {
  const open = `    <testcase classname="${xmlEscape(className)}" name="${xmlEscape(check.name)}" time="${(check.durationMs / 1000).toFixed(3)}"`;
  if (check.verdict === 'pass') return `${open}/>`;
  const reason = xmlEscape(check.reason ?? '');
  const inner = check.verdict === 'skip' ? `<skipped message="${reason}"/>` : `<failure message="${reason}">${reason}</failure>`;
  return `${open}>\n      ${inner}\n    </testcase>`;
}

export function junitXml(results: RunResults): string {
  const suites = results.stages.map((stage) => {
    const className = `${results.recipe}.${stage.name}`;
    const checks: Check[] = [
      { name: `stage ${stage.name}`, verdict: stage.verdict, reason: stage.reason, durationMs: stage.durationMs },
      ...stage.health,
      ...stage.hooks,
      ...stage.tests,
    ];
    const count = (verdict: Check['verdict']) => checks.filter((check) => check.verdict === verdict).length;
    return [
      `  <testsuite name="${xmlEscape(className)}" tests="${checks.length}" failures="${count('fail')}" skipped="${count('skip')}" errors="0" time="${(stage.durationMs / 1000).toFixed(3)}">`,
      ...checks.map((check) => testcase(className, check)),
      '  </testsuite>',
    ].join('\n');
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="cc-ci ${xmlEscape(results.recipe)} run ${xmlEscape(results.runId)}">\n${suites.join('\n')}\n</testsuites>\n`;
}
