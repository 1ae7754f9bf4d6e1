/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM ToN 7(2), 1999).
 * Encoding removes every 0x00 so that 0x00 can delimit frames on a byte stream.
 * Hand-written (30 lines) rather than a dependency: the npm `cobs` package is unmaintained
 * and allocates per call; we need bounded, allocation-light code that mirrors the C reference.
 */

/** Worst-case encoded size of `n` bytes, not counting the delimiter. */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.ceil(n / 254) + (n === 0 ? 1 : 0);
}

/** Encodes `src` and appends the 0x00 delimiter. */
export function cobsEncode(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(cobsMaxEncodedLength(src.length) + 1);
  let codeIdx = 0;
  let w = 1;
  let code = 1;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0) {
      out[codeIdx] = code;
      codeIdx = w++;
      code = 1;
    } else {
      out[w++] = b;
      code++;
      if (code === 0xff) {
        out[codeIdx] = code;
        code = 1;
        // A full block at the very end needs no trailing code byte (canonical COBS).
        if (i + 1 === src.length) return finish(out, w);
        codeIdx = w++;
      }
    }
  }
  out[codeIdx] = code;
  return finish(out, w);
}

function finish(out: Buffer, w: number): Buffer {
  out[w] = 0;
  return out.subarray(0, w + 1);
}

/**
 * Decodes one COBS block (without its delimiter) into `dst`, returning the decoded length,
 * or -1 when the block is invalid (a zero byte inside, or a code byte pointing past the end)
 * or does not fit in `dst`.
 */
export function cobsDecodeInto(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  let r = start;
  let w = 0;
  while (r < end) {
    const code = src[r++]!;
    if (code === 0) return -1;
    const stop = r + code - 1;
    if (stop > end) return -1;
    if (w + (stop - r) > dst.length) return -1;
    while (r < stop) {
      const b = src[r++]!;
      if (b === 0) return -1;
      dst[w++] = b;
    }
    // A block shorter than 0xFF stands for a zero, except after the last block.
    if (code !== 0xff && r < end) {
      if (w >= dst.length) return -1;
      dst[w++] = 0;
    }
  }
  return w;
}
