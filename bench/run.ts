// `npm run bench [name...]`: runs bench/<name>.bench.ts (all of them by default), one after the
// other so they do not compete for the two cores. Exits 1 if a figure misses its target.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
const known = readdirSync(dir)
  .filter((file) => file.endsWith('.bench.ts'))
  .map((file) => file.slice(0, -'.bench.ts'.length))
  .sort();
const unknown = wanted.filter((name) => !known.includes(name));
if (unknown.length > 0) {
  console.error(`npm run bench: no bench named ${unknown.join(', ')} (there are: ${known.join(', ')})`);
  process.exit(2);
}
const benches = known.filter((name) => wanted.length === 0 || wanted.includes(name)).map((name) => `${name}.bench.ts`);

let ok = true;
for (const file of benches) {
  const bench = (await import(new URL(file, import.meta.url).href)) as { default: () => Promise<boolean> };
  ok = (await bench.default()) && ok;
}
process.exitCode = ok ? 0 : 1;
