// Helper process: one run's fetch — build the per-run ABRA_DIR, clone the recipe at a ref into
// it, and print the tree's HEAD commit and the version file it sees.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { setupRunAbraDir } from '../../dist/lib/abra-dir.js';
import { abraClient } from '../../dist/runner/host/abra.js';
import { fetchRecipe, headCommit } from '../../dist/runner/run/recipe.js';

const [recipe, src, ref, gitBase] = process.argv.slice(2);
const log = (line) => console.log(line);
setupRunAbraDir(log);
const tree = await fetchRecipe({ recipe, src, ref, gitBase, abra: abraClient({ server: 'default', log }), log });
console.log(`TREE ${tree} HEAD ${await headCommit(tree)} VERSION ${readFileSync(join(tree, 'VERSION'), 'utf8').trim()}`);
