// `npm run bench [name...]`: runs bench/<name>.bench.ts (all of them by default), one after the
// other so they do not compete for the two cores. Exits 1 if a figure misses its target.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
const benches = readdirSync(dir)
  .filter((file) => file.endsWith('.bench.ts'))
  .filter((file) => wanted.length === 0 || wanted.includes(file.slice(0, -'.bench.ts'.length)))
  .sort();

let ok = true;
for (const file of benches) {
  const bench = (await import(new URL(file, import.meta.url).href)) as { default: () => Promise<boolean> };
  ok = (await bench.default()) && ok;
}
process.exitCode = ok ? 0 : 1;
