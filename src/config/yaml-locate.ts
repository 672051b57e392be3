/**
 * Finds where a key path stands in a parsed YAML document, so that an error names its line and column: the
 * configuration file and the workflow files both report problems this way.
 */
import { isMap, isPair, isScalar, isSeq, type Document, type Node as YamlNode } from 'yaml';
import type { Locate } from './config-issues.ts';

/**
 * A {@link Locate} over `doc`: the line and column of the value (or, with `keyOnly`, the key) at a key path, or of
 * the nearest existing parent when the path goes further than the document.
 * @param pos turns a source offset into a line and column (the `LineCounter` the document was parsed with)
 */
export function yamlLocator(doc: Document, pos: (offset: number) => { line: number; column: number }): Locate {
  const here = (n: unknown) => {
    const range = (n as YamlNode | null)?.range;
    return range ? pos(range[0]) : undefined;
  };
  return (path, keyOnly = false) => {
    let node: unknown = doc.contents;
    let last = here(node);
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === seg);
        if (pair === undefined) return last;
        if (keyOnly && i === path.length - 1) return here(pair.key) ?? last;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
      } else {
        return last;
      }
      last = here(node) ?? last;
    }
    return last;
  };
}
