// A filter in JavaScript: keeps records whose value contains the bytes of the `needle`
// parameter (UTF-8). Tombstones are dropped. Built with componentize-js (see
// build-plugin.sh) against the `filter` world of wit/plugin.wit.
//
// jco's mapping of the WIT: records are objects with camelCase fields, list<u8> is a
// Uint8Array, option<T> is T or undefined, flags are an object of booleans, and a
// thrown { tag, val } becomes the `error` variant of a result.

import { log } from 'quiver:plugin/log@0.1.0';

let needle = null;

export function init(config) {
  const found = config.find(([name]) => name === 'needle');
  if (!found || found[1].length === 0) {
    throw { tag: 'invalid-config', val: 'missing parameter `needle`' };
  }
  needle = new TextEncoder().encode(found[1]);
  log('info', `js-value-contains ready, needle of ${needle.length} bytes`);
  return { keys: false, values: true, headers: false };
}

function contains(data, start, len) {
  const end = start + len - needle.length;
  outer: for (let i = start; i <= end; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (data[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

export function keep(batch) {
  const data = batch.data;
  return batch.values.map((span) => span !== undefined && contains(data, span.offset, span.len));
}
