import { PassThrough, Writable, pipeline, type Readable } from "node:stream";
import { STREAM_CHUNK } from "./digest.js";

/**
 * Splits one stream into `count` copies that advance together (the slowest consumer sets the
 * pace, so memory stays bounded). A copy whose consumer fails is destroyed by that consumer and
 * dropped; the others carry on — a dead offsite repository must not cost the local backup.
 * A source error destroys every copy.
 */
export function fanOut(source: Readable, count: number): PassThrough[] {
  const outputs = Array.from(
    { length: count },
    () => new PassThrough({ highWaterMark: STREAM_CHUNK }),
  );
  const live = new Set(outputs);
  for (const output of outputs) {
    output.once("close", () => live.delete(output));
  }

  const sink = new Writable({
    highWaterMark: STREAM_CHUNK,
    write(chunk: Buffer, _encoding, callback) {
      if (live.size === 0) {
        callback(new Error("every destination of this stream failed"));
        return;
      }
      const waits: Promise<void>[] = [];
      for (const output of live) {
        if (!output.write(chunk)) waits.push(drainedOrClosed(output));
      }
      if (waits.length === 0) callback();
      else Promise.all(waits).then(() => callback(), callback);
    },
    final(callback) {
      for (const output of live) output.end();
      callback();
    },
  });

  pipeline(source, sink, (error) => {
    if (error) for (const output of live) output.destroy(error);
  });
  return outputs;
}

function drainedOrClosed(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}
